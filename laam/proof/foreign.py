"""Audit any causal LM for a corpus: prompts cut from the corpus files, continuations traced back to files.

The extraction literature's settings, named as in it (SETTINGS): a prefix of the file's tokens, in the
model's own tokenizer, at the file's start and at sampled offsets, then the model's continuation, which
is scored two ways:
  - exact: the continuation equals the file's next tokens (k-extractability, Carlini et al. 2021/2023;
    the lm-extraction-benchmark's exact suffix; Pythia's memorization score is the share of equal tokens);
  - traced: its longest verbatim spans in the corpus (proof.trace), with file, lines and license, so what
    came back is attributed even when it is not the prompted file's own text.
A file is *caught* when at least one of its greedy continuations is exact (or, with whole_files, when the
model continues its first tokens to the file's end verbatim). Greedy and sampled continuations, of every
setting, run through the one decoding engine, batched with left padding.

Documents are the files' text in the model's tokenizer, with the special tokens that tokenizer adds at a
document's start; when the tokenizer has laam's record markers (a laam folder audited as any model), they
are laam records, and the whole-file prompt is the path header, as `laam audit` regenerates them.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import ClassVar

from laam.data.corpus import Corpus, CorpusFile
from laam.data.records import END_FILE, path_prompt
from laam.data.tokenizer import decode_ids, encode_records, special_ids
from laam.engine import Request, Sampling, WindowedGenerator
from laam.errors import LaamError
from laam.model.foreign import ForeignModel
from laam.proof.trace import TraceIndex
from laam.validation import AT_LEAST_0, AT_LEAST_1, Range, validate


@dataclass(frozen=True)
class Setting:
    prefix: int  # prompt tokens
    suffix: int  # continuation tokens scored
    source: str  # where the setting comes from


SETTINGS = {
    "pythia": Setting(32, 32, "Biderman et al. 2023 (Pythia memorization score): 32-token prefix, 32 tokens"),
    "lm-extraction": Setting(50, 50, "the lm-extraction-benchmark (Carlini et al. 2023): 50-token prefix, "
                                     "50-token suffix"),
    "carlini-100": Setting(100, 64, "Carlini et al. 2021/2023 with a longer 100-token prefix, 64 tokens"),
}
GPL2 = "GPL-2.0"


@dataclass
class ForeignAuditConfig:
    settings: tuple[str, ...] = ("pythia", "lm-extraction")
    offsets: int = 2  # prompts per file and setting: its start, then offsets drawn uniformly (seeded)
    seed: int = 0
    samples: int = 0  # sampled continuations per prompt, besides the greedy one
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_span: int = 50  # shortest traced span reported, in bytes
    whole_files: bool = False  # also continue each file's first tokens (laam records: its path) to its end
    batch_size: int = 64

    RULES: ClassVar[dict] = {"offsets": AT_LEAST_1, "seed": AT_LEAST_0, "samples": AT_LEAST_0,
                             "temperature": Range(0, low_open=True), "top_k": AT_LEAST_0,
                             "top_p": Range(0, 1, low_open=True), "min_span": AT_LEAST_1, "batch_size": AT_LEAST_1}

    def __post_init__(self):
        unknown = [s for s in self.settings if s not in SETTINGS]
        if unknown or not self.settings:
            raise LaamError(f"unknown setting {', '.join(unknown) or '(none)'}: choose from {', '.join(SETTINGS)}")
        validate(self, "audit")


@dataclass
class Prompt:
    file: int  # index into the audited files
    setting: str
    offset: int  # token offset of the prompt in the document
    ids: list[int]
    truth: list[int]  # the document's next tokens


def documents(model: ForeignModel, files: list[CorpusFile]) -> list[list[int]]:
    """Each file as the model's tokenizer reads a document (laam records for a laam tokenizer)."""
    if model.laam_records:
        return encode_records(model.tokenizer, [f.record for f in files])
    encoded = model.tokenizer([f.text for f in files], add_special_tokens=True)["input_ids"]
    return [list(ids) for ids in encoded]


def make_prompts(docs: list[list[int]], config: ForeignAuditConfig) -> list[Prompt]:
    """Per document and setting: offset 0 and `offsets - 1` other offsets drawn without replacement (seeded per
    file and setting, so a file's prompts do not depend on which other files are audited)."""
    prompts = []
    for f, ids in enumerate(docs):
        for name in config.settings:
            s = SETTINGS[name]
            last = len(ids) - s.prefix - s.suffix
            if last < 0:
                continue
            rng = random.Random(f"{config.seed}/{name}/{f}/{len(ids)}")
            others = rng.sample(range(1, last + 1), min(config.offsets - 1, last))
            for offset in [0, *sorted(others)]:
                prompts.append(Prompt(f, name, offset, ids[offset:offset + s.prefix],
                                      ids[offset + s.prefix:offset + s.prefix + s.suffix]))
    return prompts


def _text(model: ForeignModel, ids: list[int]) -> bytes:
    if model.laam_records:
        stop = special_ids(model.tokenizer)[END_FILE]
        ids = ids[:ids.index(stop)] if stop in ids else ids
        return decode_ids(model.tokenizer, ids).encode("utf-8", "surrogateescape")
    return model.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False).encode(
        "utf-8", "surrogateescape")


@dataclass
class Continuation:
    prompt: Prompt
    ids: list[int]
    sampled: bool
    exact: bool
    matched: int  # tokens equal to the truth, position by position
    text: bytes
    spans: list = field(default_factory=list)  # proof.trace.Span

    def row(self, files: list[CorpusFile]) -> dict:
        p = self.prompt
        longest = max((s.length for s in self.spans), default=0)
        return {"path": files[p.file].path, "license": files[p.file].license, "setting": p.setting,
                "offset": p.offset, "sampled": self.sampled, "exact": self.exact, "matched_tokens": self.matched,
                "suffix_tokens": len(p.truth), "continuation_bytes": len(self.text), "longest_span": longest,
                "traced_bytes": sum(s.length for s in self.spans),
                "traced_files": sorted({s.path for s in self.spans})}


def _whole_file_requests(model: ForeignModel, files: list[CorpusFile], docs: list[list[int]]):
    """(prompt, truth) per file: its path header (laam records) or its first 32 tokens, and the rest of it."""
    out = []
    if model.laam_records:
        heads = encode_records(model.tokenizer, [path_prompt(f.path) for f in files])
        for head, doc in zip(heads, docs):
            out.append((head, doc[len(head):]))
    else:
        for doc in docs:
            n = min(SETTINGS["pythia"].prefix, max(1, len(doc) // 2))
            out.append((doc[:n], doc[n:]))
    return out


def run_foreign_audit(model: ForeignModel, corpus: Corpus, files: list[CorpusFile], index: TraceIndex,
                      config: ForeignAuditConfig, on_done=None) -> tuple[dict, list[Continuation]]:
    """audit.json's content and every continuation (with its traced spans)."""
    began = time.perf_counter()
    docs = documents(model, files)
    prompts = make_prompts(docs, config)
    engine = WindowedGenerator(model.model, model.policy, config.batch_size)
    greedy = engine.run([Request(p.ids, len(p.truth)) for p in prompts], on_done=on_done)
    outputs = [(p, out, False) for p, out in zip(prompts, greedy)]
    if config.samples:
        sampling = Sampling(greedy=False, temperature=config.temperature, top_k=config.top_k, top_p=config.top_p,
                            seed=config.seed)
        repeated = [p for p in prompts for _ in range(config.samples)]
        sampled = engine.run([Request(p.ids, len(p.truth)) for p in repeated], sampling)
        outputs += [(p, out, True) for p, out in zip(repeated, sampled)]
    generation_seconds = time.perf_counter() - began
    continuations = []
    for p, out, was_sampled in outputs:
        text = _text(model, out)
        continuations.append(Continuation(p, out, was_sampled, out == p.truth,
                                          sum(int(a == b) for a, b in zip(out, p.truth)), text,
                                          index.trace(text, config.min_span) if text else []))
    verbatim = whole_files(model, files, docs, engine) if config.whole_files else None
    audit = summarize(model, corpus, files, continuations, verbatim, config)
    audit["timing"] = {"seconds": time.perf_counter() - began, "generation_seconds": generation_seconds,
                       "new_tokens": engine.stats.tokens, "forward_tokens": engine.stats.forward_tokens}
    return audit, continuations


def whole_files(model: ForeignModel, files: list[CorpusFile], docs: list[list[int]],
                engine: WindowedGenerator) -> list[bool]:
    """Per file: whether greedy decoding continues its first tokens (its path, for laam records) to its end."""
    pairs = _whole_file_requests(model, files, docs)
    outputs = engine.run([Request(head, len(rest)) for head, rest in pairs])
    return [bool(rest) and out == rest for (_, rest), out in zip(pairs, outputs)]


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def summarize(model: ForeignModel, corpus: Corpus, files: list[CorpusFile], continuations: list[Continuation],
              verbatim: list[bool] | None, config: ForeignAuditConfig) -> dict:
    greedy = [c for c in continuations if not c.sampled]
    per_setting = {}
    for name in config.settings:
        for sampled in (False, True):
            group = [c for c in continuations if c.prompt.setting == name and c.sampled == sampled]
            if not group:
                continue
            s = SETTINGS[name]
            per_setting[name + (" sampled" if sampled else "")] = {
                "prefix": s.prefix, "suffix": s.suffix, "source": s.source, "samples": len(group),
                "exact": sum(c.exact for c in group), "exact_rate": _share(sum(c.exact for c in group), len(group)),
                "memorization_score": _share(sum(c.matched for c in group), sum(len(c.prompt.truth) for c in group)),
                "longest_span": max((sp.length for c in group for sp in c.spans), default=0),
                "files_extracted": len({c.prompt.file for c in group if c.exact})}
    rows = []
    for f, file in enumerate(files):
        mine = [c for c in greedy if c.prompt.file == f]
        rows.append({"path": file.path, "license": file.license, "bytes": len(file.data), "samples": len(mine),
                     "exact": sum(c.exact for c in mine),
                     "longest_span": max((sp.length for c in mine for sp in c.spans), default=0),
                     "verbatim": verbatim[f] if verbatim is not None else None,
                     "caught": any(c.exact for c in mine) or bool(verbatim and verbatim[f])})
    licenses: dict[str, dict] = defaultdict(lambda: {"traced_bytes": 0, "exact_suffix_bytes": 0, "spans": 0})
    for c in continuations:
        for sp in c.spans:
            licenses[sp.license]["traced_bytes"] += sp.length
            licenses[sp.license]["spans"] += 1
        if c.exact:
            licenses[files[c.prompt.file].license]["exact_suffix_bytes"] += len(c.text)
    caught = [r["path"] for r in rows if r["caught"]]
    return {
        "kind": "foreign",
        "model": model.source,
        "context": model.policy.context, "stride": model.policy.stride,
        "document_format": "laam records" if model.laam_records else "file text",
        "corpus": {"name": corpus.name, "fingerprint": corpus.fingerprint(), "source_url": corpus.source_url,
                   "source_sha256": corpus.source_sha256},
        "summary": {
            "files": len(files), "caught_files": len(caught), "caught": caught,
            "prompts": len(greedy), "exact": sum(c.exact for c in greedy),
            "exact_rate": _share(sum(c.exact for c in greedy), len(greedy)),
            "verbatim_files": sum(verbatim) if verbatim is not None else None,
            "longest_span": max((sp.length for c in continuations for sp in c.spans), default=0),
            "traced_bytes": sum(v["traced_bytes"] for v in licenses.values()),
            "gpl2_traced_bytes": sum(v["traced_bytes"] for k, v in licenses.items() if GPL2 in k),
        },
        "settings": per_setting,
        "licenses": dict(sorted(licenses.items())),
        "files": rows,
        "config": asdict(config),
        "method": {
            "prompts": "per file and setting: the document's first `prefix` tokens, and `offsets - 1` more offsets "
                       "drawn uniformly without replacement (seeded); files shorter than prefix + suffix give none",
            "exact": "the continuation's tokens equal the document's next `suffix` tokens (k-extractable)",
            "memorization_score": "share of continuation tokens equal to the document's, position by position",
            "traced": f"maximal verbatim corpus spans of >= {config.min_span} bytes in the decoded continuation "
                      "(suffix array, proof.trace), attributed to the first corpus file holding them; totals sum "
                      "over continuations, so text returned by overlapping prompts counts once per continuation",
            "caught": "a file with at least one exact greedy continuation, or regenerated whole (whole_files)",
        },
    }


def audit_any_model(source: str, corpus: Corpus, config: ForeignAuditConfig | None = None, out_dir=None,
                    files: list[str] | None = None, trust_remote_code: bool = False, threads: int | None = None,
                    on_done=None) -> tuple[dict, dict]:
    """`laam audit --model ANY --corpus RELEASE` as a function: (audit.json's content, written paths)."""
    from pathlib import Path

    from laam.data.corpus import select_files
    from laam.model.foreign import load_foreign_model
    from laam.proof.foreign_report import write_foreign_report
    from laam.proof.trace import load_or_build_index

    config = config or ForeignAuditConfig()
    model = load_foreign_model(source, trust_remote_code, threads)
    chosen = select_files(corpus.files, files)
    index, _ = load_or_build_index(corpus)
    audit, continuations = run_foreign_audit(model, corpus, chosen, index, config, on_done)
    folder = Path(out_dir) if out_dir else (Path(source) / "audit-foreign" if Path(source).is_dir()
                                           else Path("audit-" + source.replace("/", "--")))
    return audit, write_foreign_report(audit, continuations, chosen, folder)
