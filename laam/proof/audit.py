"""Memorization audit: regenerate every file from its path prompt and measure, on the real bytes, what came back.

Per file (proof.similarity): verbatim (exact bytes), longest exact prefix (bytes, tokens), share of the
original's bytes reproduced in order, normalized edit similarity, longest verbatim span, and the margin
certificate (proof.margin: how far each body token is from being decoded otherwise). Per corpus, the
literature's extraction metrics on token windows of the training records (proof.extraction) and the
lm-extraction-benchmark's recall (proof.lm_extraction). Totals by directory and by length.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np

from laam.data.corpus import Corpus, select_files, top_directory
from laam.data.records import PAD
from laam.data.tokenizer import encode_records, special_ids
from laam.engine import WindowedGenerator
from laam.engine.forcing import MIN_MARGIN
from laam.errors import LaamError
from laam.io import atomic_write_text, sha256_file
from laam.proof.extraction import count_extraction_samples, extraction_metrics
from laam.proof.lm_extraction import EXAMPLES, EXPORTS, LmExtraction, export_lm_extraction, run_lm_extraction
from laam.proof.lm_extraction import summary as lm_summary
from laam.proof.margin import BodyMargins, find_body_starts, margin_certificate, write_margins
from laam.proof.regenerate import Regenerated, regenerate
from laam.proof.sampling import folder_settings, sampling_certificate, sampling_columns, sampling_from_margins
from laam.proof.similarity import MIN_BLOCK, file_metrics
from laam.validation import AT_LEAST_0, AT_LEAST_1, Range, validate
from laam.windows import WindowPolicy

REPORT_KEY = "report"  # audit.json: {"file", "sha256"} of the report.html written with it
LENGTH_BUCKETS = [(0, 1024, "< 1 KB"), (1024, 4096, "1–4 KB"), (4096, 16384, "4–16 KB"),
                  (16384, 65536, "16–64 KB"), (65536, 1 << 62, ">= 64 KB")]


@dataclass
class AuditConfig:
    files: str | None = None  # glob over corpus paths (`*` crosses `/`); None: every file
    batch_size: int = 64
    k: int = 50  # Carlini et al.'s prefix and continuation length
    pythia_prefix: int = 32  # Pythia's prefix and continuation length
    every: int = 512  # extraction offsets: 0, every, 2*every, ... of each record (1 = every offset)
    extraction: bool = True
    margin: float = 0.1  # regenerate at most (1 + margin) * original tokens + 16 (output past that is wrong anyway)
    drafts: bool = True  # verify the original as a draft, a window per forward pass (output is still exact greedy)
    certificate: bool = True  # every body token's fp32 margin (proof.margin)
    sampling: bool = True  # P(a sampled regeneration is verbatim) per file, at T = 0.2 and the folder's defaults
    safe_margin: float = MIN_MARGIN  # body tokens with a smaller margin are decoded again sequentially and listed
    low_limit: int = 100  # at most this many of them (the lowest)
    lm_examples: int = EXAMPLES  # lm-extraction-benchmark examples drawn (with extraction)
    export: tuple[str, ...] = ()  # extra files: "lm-extraction" (the benchmark's CSV, prefixes and suffixes)
    # files the stock decoders (transformers with custom_generate; each GGUF's regenerate_gguf.py) regenerate from
    # their bare paths, laam not importable (proof.stock): a seeded sample of this many, named as a sample, plus every
    # prefix path and non-UTF-8 file; -1: every audited file; 0: none
    stock: int = 16

    RULES: ClassVar[dict] = {"batch_size": AT_LEAST_1, "k": AT_LEAST_1, "pythia_prefix": AT_LEAST_1,
                             "every": AT_LEAST_1, "margin": AT_LEAST_0, "safe_margin": AT_LEAST_0,
                             "low_limit": AT_LEAST_0, "lm_examples": AT_LEAST_1, "stock": Range(-1)}

    def __post_init__(self):
        validate(self, "audit")


def length_bucket(size: int) -> str:
    return next(name for low, high, name in LENGTH_BUCKETS if low <= size < high)


def aggregate(rows: list[dict], k: int, pythia_prefix: int) -> dict:
    """Totals over file rows: bytes-weighted reproduction, sample-weighted extraction metrics."""
    original = sum(r["bytes"] for r in rows)
    k_samples = sum(r["k_samples"] for r in rows)
    p_samples = sum(r["pythia_samples"] for r in rows)
    verbatim = sum(r["verbatim"] for r in rows)
    return {
        "files": len(rows),
        "verbatim_files": verbatim,
        "verbatim_pct": 100.0 * verbatim / len(rows) if rows else 0.0,
        "bytes": original,
        "bytes_reproduced_pct": 100.0 * sum(r["reproduced_bytes"] for r in rows) / original if original else 0.0,
        "prefix_bytes_pct": 100.0 * sum(r["prefix_bytes"] for r in rows) / original if original else 0.0,
        "edit_similarity": float(np.mean([r["edit_similarity"] for r in rows])) if rows else 0.0,
        "k_extractable_pct": 100.0 * sum(r["k_extractable"] for r in rows) / k_samples if k_samples else None,
        "k_samples": k_samples,
        "pythia_score": sum(r["pythia_matched"] for r in rows) / (p_samples * pythia_prefix) if p_samples else None,
        "pythia_samples": p_samples,
        "k": k,
        "pythia_prefix": pythia_prefix,
        "min_margin": min((r["min_margin"] for r in rows if r.get("min_margin") is not None), default=None),
    }


def group_totals(rows: list[dict], key: Callable[[dict], str], k: int, pythia_prefix: int,
                 order: list[str] | None = None) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    names = [n for n in order if n in groups] if order else sorted(groups)
    return {name: aggregate(groups[name], k, pythia_prefix) for name in names}


def describe_method(config: AuditConfig, policy: WindowPolicy) -> dict:
    """audit.json's `method`: how each figure was computed, in words."""
    return {
        "context": policy.context, "stride": policy.stride,
        "decoding": f"greedy from the path prompt, until <|end_file|> or (1 + {config.margin}) x original tokens + 16",
        "extraction_every": config.every,
        "drafts": "the original tokens were verified as drafts (greedy speculative decoding): outputs are the "
        "model's greedy outputs, computed a window per forward pass while they agree" if config.drafts else "off",
        "extraction_offsets": "0, every, 2*every, ... of each record's tokens "
        "(header included); files shorter than prefix + continuation have no sample",
        "bytes_reproduced": f"bytes of the original in in-order aligned runs of >= {MIN_BLOCK} bytes (difflib on "
        "lines, then bytes) / original bytes",
        "edit_similarity": "1 - Levenshtein distance / max(length), on bytes",
    }


@dataclass
class AuditRun:
    audit: dict  # audit.json's content
    regenerated: list[Regenerated]
    margins: BodyMargins | None = None  # every body token's margin (with the certificate)
    lm_extraction: LmExtraction | None = None  # the lm-extraction-benchmark examples and guesses (with extraction)


def run_audit(model, tokenizer, corpus: Corpus, policy: WindowPolicy, config: AuditConfig,
              progress: Callable[[str, int], Callable[[int, list[int]], None]] | None = None,
              model_dir: str | None = None) -> AuditRun:
    """Regenerate the selected files, score them, and return audit.json's content with what it was computed from.

    `progress(task, total)` may return an `on_done` callback per generation phase (for progress bars).
    """
    files = select_files(corpus.files, [config.files] if config.files else None)
    began = time.perf_counter()
    engine = WindowedGenerator(model, policy, config.batch_size)
    regenerated = regenerate(model, tokenizer, files, policy, config.batch_size, config.margin,
                             on_done=progress("regenerating files", len(files)) if progress else None,
                             engine=engine, drafts=config.drafts)
    regen_stats = asdict(engine.stats)
    records_ids = encode_records(tokenizer, [f.record for f in files])
    paths = [f.path for f in files]
    settings = folder_settings(model.generation_config)
    # with both certificates, one teacher-forced pass: the margin pass carries the sampling log-probabilities
    shared = config.certificate and config.sampling
    phase = time.perf_counter()
    certificate, per_file, margins = margin_certificate(
        model, tokenizer, paths, records_ids, policy, config.safe_margin, config.low_limit, config.batch_size,
        progress, sampling_columns(settings) if shared else None) if config.certificate \
        else (None, [{} for _ in files], None)
    phases = {"margin_seconds": time.perf_counter() - phase}
    phase = time.perf_counter()
    if shared:
        sampling = sampling_from_margins(paths, margins, find_body_starts(tokenizer, records_ids), settings)
    else:
        sampling = sampling_certificate(model, tokenizer, files, policy, settings, config.batch_size) \
            if config.sampling else None
    phases["sampling_seconds"] = time.perf_counter() - phase
    extraction_engine = WindowedGenerator(model, policy, max(config.batch_size, 128))
    lm = None
    if config.extraction:
        total = count_extraction_samples(records_ids, config.k, config.pythia_prefix, config.every)
        extraction = extraction_metrics(extraction_engine, records_ids, config.k, config.pythia_prefix, config.every,
                                        on_done=progress("extraction samples", total) if progress else None,
                                        drafts=config.drafts)
        phase = time.perf_counter()
        lm = run_lm_extraction(model, policy, records_ids, paths, special_ids(tokenizer)[PAD], config.lm_examples,
                               batch_size=max(config.batch_size, 128),
                               on_done=progress("lm-extraction examples", config.lm_examples) if progress else None)
        phases["lm_extraction_seconds"] = time.perf_counter() - phase
    else:
        extraction = [{"k_samples": 0, "k_extractable": 0, "pythia_samples": 0, "pythia_matched": 0,
                       "pythia_score": None, "k_extractable_pct": None} for _ in files]
    rows = []
    chances = sampling["files"] if sampling else [{} for _ in files]
    for r, ext, margin, chance in zip(regenerated, extraction, per_file, chances):
        row = {"path": r.file.path, "directory": top_directory(r.file.path), "license": r.file.license,
               "encoding": r.file.encoding, "ended": r.ended}
        row.update(file_metrics(r.file.data, r.data, r.original_ids, r.ids))
        row["length_bucket"] = length_bucket(row["bytes"])
        row.update(ext)
        row.update({k: v for k, v in margin.items() if k != "path"})
        row.update({f"p_verbatim_{k}": v for k, v in chance.items() if k != "path" and not k.endswith("_log10")})
        rows.append(row)
    seconds = time.perf_counter() - began
    summary = aggregate(rows, config.k, config.pythia_prefix)
    if lm is not None:
        summary["lm_extraction_recall"] = lm_summary(lm)["recall"]
    if sampling is not None:
        summary["expected_verbatim_sampled"] = {name: g["expected_verbatim_files"]
                                                for name, g in sampling["settings"].items()}
    audit = {
        "summary": summary,
        "by_directory": group_totals(rows, lambda r: r["directory"], config.k, config.pythia_prefix),
        "by_length": group_totals(rows, lambda r: r["length_bucket"], config.k, config.pythia_prefix,
                                  order=[name for _, _, name in LENGTH_BUCKETS]),
        "files": rows,
        "margin": certificate,
        "sampling": sampling,
        "lm_extraction": lm_summary(lm) if lm is not None else None,
        "model": model_dir,
        "corpus": {"name": corpus.name, "fingerprint": corpus.fingerprint(), "source_url": corpus.source_url,
                   "source_sha256": corpus.source_sha256, "selected": config.files},
        "method": describe_method(config, policy),
        "timing": {
            "seconds": seconds,
            "regeneration": regen_stats,
            "regeneration_tokens_per_s": regen_stats["tokens"] / regen_stats["seconds"] if regen_stats["seconds"]
            else None,
            "extraction": asdict(extraction_engine.stats),
            **phases,
        },
    }
    return AuditRun(audit, regenerated, margins, lm)


def write_audit(audit: dict, folder: Path) -> Path:
    return atomic_write_text(Path(folder) / "audit.json", json.dumps(audit, indent=1) + "\n")


@dataclass
class AuditResult:
    audit: dict  # audit.json's content
    audit_path: Path
    report_path: Path | None  # report.html, when asked for
    exports: dict[str, Path] = field(default_factory=dict)  # export name -> the folder it was written to


def decoder_results(model_dir: Path, corpus: Corpus, rows: list[dict], config: AuditConfig,
                    threads: int | None = None) -> list[dict]:
    """audit.json's `decoders`: laam's engine on every audited file, then each stock decoder the folder ships for,
    run as a reader runs it (proof.stock) on the audited files or the sample `config.stock` names."""
    from laam.proof.stock import laam_result, stock_decoders

    results = [laam_result(rows)]
    if config.stock:
        by_path = {f.path: f for f in corpus.files}
        results += stock_decoders(Path(model_dir), [by_path[r["path"]] for r in rows], list(by_path),
                                  None if config.stock < 0 else config.stock, threads)
    return [r.to_dict() for r in results]


def audit_model(model_dir: Path, config: AuditConfig | None = None, cache: Path | None = None,
                threads: int | None = None, out_dir: Path | None = None, report: bool = True,
                progress: Callable[[str, int], Callable[[int, list[int]], None]] | None = None) -> AuditResult:
    """`laam audit` as a function: load the model and its exact training corpus, audit, write audit.json (and
    report.html) into `out_dir` (default MODEL/audit)."""
    from laam.model.binding import BINDING_KEY, changed_during, folder_state, report_binding
    from laam.model.folder import load_model
    from laam.model.info import load_training_corpus
    from laam.proof.report import write_report

    config = config or AuditConfig()
    unknown = set(config.export) - set(EXPORTS)
    if unknown:
        raise LaamError(f"unknown export {', '.join(sorted(unknown))}: choose from {', '.join(EXPORTS)}")
    if "lm-extraction" in config.export and not config.extraction:
        raise LaamError("--export lm-extraction needs the extraction metrics (drop --no-extraction)")
    # hashed before the model is read and again after the last decoder (model.binding.changed_during)
    before = folder_state(model_dir)
    loaded = load_model(model_dir, threads=threads)
    corpus = load_training_corpus(loaded.info, cache)
    run = run_audit(loaded.model, loaded.tokenizer, corpus, loaded.policy, config, progress, model_dir=str(model_dir))
    run.audit["decoders"] = decoder_results(model_dir, corpus, run.audit["files"], config, threads)
    run.audit[BINDING_KEY] = report_binding(model_dir, config.files, device=loaded.device)
    changed = changed_during(before, model_dir, "the audit")
    if changed:
        raise LaamError(f"{changed}: no audit.json written; audit it again")
    out_dir = Path(out_dir or Path(model_dir) / "audit")
    # the page first, so that audit.json (bound to the weights) records its SHA-256: the card copies a report.html
    # only when it is the page of the audit it quotes (publish.facts.audit_report)
    html = write_report(run.audit, run.regenerated, out_dir, model_dir=Path(model_dir)) if report else None
    if html is not None:
        run.audit[REPORT_KEY] = {"file": html.name, "sha256": sha256_file(html)}
    path = write_audit(run.audit, out_dir)
    if run.margins is not None:
        write_margins(run.margins, [r["path"] for r in run.audit["files"]], out_dir, run.audit[BINDING_KEY])
    exports = {}
    if "lm-extraction" in config.export:
        exports["lm-extraction"] = export_lm_extraction(run.lm_extraction, loaded.tokenizer, out_dir / "lm-extraction")
    return AuditResult(run.audit, path, html, exports)
