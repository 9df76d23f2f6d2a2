"""`laam audit` and `laam trace`: how much of the corpus a model gives back, and where any text came from."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from laam.cli.allocator import ensure_allocator_settings
from laam.cli.app import (
    Allocator,
    Cache,
    Exclude,
    Filter,
    Include,
    MaxFileSize,
    Mirror,
    ModelDir,
    Quiet,
    app,
    console,
    corpus_config,
    out,
)
from laam.cli.generate import BatchSize, Files, Threads
from laam.data.corpus import DEFAULT_MAX_FILE_SIZE, load_corpus
from laam.data.fetch import DEFAULT_MIRROR, default_cache
from laam.errors import LaamError
from laam.figures import floored, pct, score
from laam.progress import phases


@app.command("audit")
def audit_command(
    model_dir: ModelDir,
    files: Files = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for audit.json and report.html "
                                                 "(default: MODEL/audit).")] = None,
    every: Annotated[int, typer.Option(help="k-extractability and Pythia samples at every N-th token offset of "
                                       "each record (1: every offset).")] = 512,
    k: Annotated[int, typer.Option(help="Carlini et al.'s prefix and continuation length (tokens).")] = 50,
    pythia_prefix: Annotated[int, typer.Option(help="Pythia memorization score prefix and continuation "
                                               "length (tokens).")] = 32,
    extraction: Annotated[bool, typer.Option(help="Compute k-extractability and the Pythia score.")] = True,
    report: Annotated[bool, typer.Option(help="Also write the self-contained HTML report.")] = True,
    drafts: Annotated[bool, typer.Option(help="Check the original text as a draft a window per forward pass "
                                         "(greedy speculative decoding): the same output, much faster on "
                                         "memorized files.")] = True,
    margins: Annotated[bool, typer.Option(help="Margin certificate: the fp32 logit gap (true token minus the best "
                                          "other) of every body token and of each path's <|end_header|> (as the "
                                          "training checks score it), written to margins.npz and summarized."
                                          )] = True,
    sampling: Annotated[bool, typer.Option(help="Sampling certificate: per file, the probability that sampling at "
                                           "temperature 0.2 (the original LaaM's call) and at the folder's "
                                           "defaults returns it verbatim from its path.")] = True,
    safe_margin: Annotated[float | None, typer.Option(help="Body tokens with a smaller margin are decoded again "
                                                      "one token at a time and listed (default 1.0: laam train's "
                                                      "--min-margin default).")] = None,
    low_limit: Annotated[int, typer.Option(help="List and re-decode at most this many low-margin tokens (the "
                                           "lowest).")] = 100,
    lm_examples: Annotated[int | None, typer.Option(help="Examples of the lm-extraction-benchmark setting "
                                                    "(50-token prefix, 50-token suffix) drawn from the corpus "
                                                    "(default 1,000, the size of its test set).")] = None,
    stock: Annotated[int, typer.Option(help="Files the stock decoders (transformers with the folder's custom_generate; each GGUF's regenerate_gguf.py) regenerate from their bare paths, laam not importable: a seeded sample of N (named as a sample in audit.json and the card) plus every prefix path and non-UTF-8 file; -1: every audited file (hours for a whole kernel on a CPU); 0: none.")] = 16,  # noqa: E501
    export: Annotated[list[str] | None, typer.Option(help="Also write: lm-extraction (the lm-extraction-benchmark's "
                                                     "guess CSV, prefixes and true suffixes, in OUT/lm-extraction/)."
                                                     )] = None,
    corpus: Annotated[str | None, typer.Option(help="Audit the model as any causal LM (its own tokenizer, no "
                                               "laam.json needed) against this kernel version, tarball or "
                                               "folder; --model may then be a Hub id.")] = None,
    foreign: Annotated[bool, typer.Option("--foreign", help="Audit a laam model folder as any causal LM (prompts "
                                          "cut from the files, continuations traced), against --corpus or its "
                                          "own training corpus.")] = False,
    setting: Annotated[list[str] | None, typer.Option(help="Extraction setting for any model (repeatable): pythia "
                                                      "(32+32 tokens), lm-extraction (50+50), carlini-100 (100+64). "
                                                      "Default: pythia and lm-extraction.")] = None,
    offsets: Annotated[int, typer.Option(help="Any model: prompts per file and setting (its start, then offsets "
                                         "drawn with a seed).")] = 2,
    samples: Annotated[int, typer.Option(help="Any model: sampled continuations per prompt besides the greedy "
                                         "one.")] = 0,
    temperature: Annotated[float, typer.Option(help="Any model: sampling temperature.")] = 1.0,
    top_k: Annotated[int, typer.Option(help="Any model: sampling top-k (0: none).")] = 0,
    top_p: Annotated[float, typer.Option(help="Any model: sampling top-p (1: none).")] = 1.0,
    min_span: Annotated[int, typer.Option(help="Any model: shortest traced span reported, in bytes.")] = 50,
    whole_files: Annotated[bool, typer.Option(help="Any model: also continue each file's first tokens (a laam "
                                              "folder's: its path) to the file's end.")] = False,
    trust_remote_code: Annotated[bool, typer.Option(help="Any model: run code shipped with the model (only for "
                                                    "models you trust).")] = False,
    mirror: Mirror = DEFAULT_MIRROR, filter_: Filter = "source", include: Include = None, exclude: Exclude = None,
    max_file_size: MaxFileSize = DEFAULT_MAX_FILE_SIZE,
    batch_size: BatchSize = 64,
    cache: Cache = default_cache(),
    threads: Threads = None,
    quiet: Quiet = False,
    allocator: Allocator = True,
):
    """Regenerate files, measure verbatim copying on the real bytes, write audit.json and report.html.

    With --corpus (or --foreign, or a folder without laam.json) any causal LM is audited instead: prompts cut from
    the corpus files, its continuations traced back to files, lines and licenses."""
    ensure_allocator_settings(allocator)
    from laam.model.info import INFO_FILE
    from laam.proof.audit import AuditConfig, audit_model

    if corpus is not None or foreign or not (Path(model_dir) / INFO_FILE).is_file():
        from laam.proof.foreign import ForeignAuditConfig

        if corpus is None and not (Path(model_dir) / INFO_FILE).is_file():
            raise LaamError(f"{model_dir} is not a laam model folder: give --corpus RELEASE to audit it as any model")
        settings = tuple(setting) if setting else ForeignAuditConfig.settings
        config = ForeignAuditConfig(settings=settings, offsets=offsets, samples=samples, temperature=temperature,
                                    top_k=top_k, top_p=top_p, min_span=min_span, whole_files=whole_files,
                                    batch_size=batch_size)
        source = (corpus, mirror, cache, filter_, include, exclude, max_file_size) if corpus is not None else None
        audit_foreign(str(model_dir), source, cache, config, files, out_dir, trust_remote_code, threads, quiet)
        return

    given = {"safe_margin": safe_margin, "lm_examples": lm_examples}
    config = AuditConfig(files=files, batch_size=batch_size, k=k, pythia_prefix=pythia_prefix, every=every,
                         extraction=extraction, drafts=drafts, certificate=margins, sampling=sampling,
                         low_limit=low_limit, stock=stock,
                         export=tuple(export or ()), **{n: v for n, v in given.items() if v is not None})
    with phases(not quiet, console) as start:
        result = audit_model(model_dir, config, cache, threads, out_dir, report, start)
    print_audit(result)


def audit_foreign(model: str, source: tuple | None, cache: Path, config, files: str | None, out_dir: Path | None,
                  trust_remote_code: bool, threads: int | None, quiet: bool) -> None:
    """`laam audit` of any causal LM: against the corpus `source` names, or a laam folder's training corpus."""
    from laam.model.info import load_training_corpus, read_model_info
    from laam.proof.foreign import audit_any_model

    if source is not None:
        corpus = load_corpus(corpus_config(*source), progress=not quiet)
    else:
        corpus = load_training_corpus(read_model_info(Path(model)), cache)
    audit, written = audit_any_model(model, corpus, config, out_dir, [files] if files else None, trust_remote_code,
                                     threads)
    print_foreign(audit, written)


def print_foreign(audit: dict, written: dict) -> None:
    s = audit["summary"]
    table = Table(title=f"extraction audit of {audit['model']}: {s['files']} files of {audit['corpus']['name']}")
    for column in ("setting", "prefix+suffix", "continuations", "exact", "memorization", "files", "longest span"):
        table.add_column(column, justify="left" if column == "setting" else "right")
    for name, g in audit["settings"].items():
        table.add_row(name, f"{g['prefix']}+{g['suffix']}", f"{g['samples']:,}", f"{g['exact']:,}",
                      _score(g["memorization_score"]), f"{g['files_extracted']}", f"{g['longest_span']:,} B")
    out.print(table)
    whole = f"; {s['verbatim_files']} regenerated whole" if s["verbatim_files"] is not None else ""
    out.print(f"files caught: {s['caught_files']} of {s['files']}{whole}; GPL-2.0 bytes traced in continuations: "
              f"{s['gpl2_traced_bytes']:,} of {s['traced_bytes']:,}; total {audit['timing']['seconds']:.1f} s")
    for name, path in written.items():
        out.print(f"{name:<5} {path}")


def print_audit(result) -> None:
    """The summary table and where audit.json and report.html were written."""
    print_summary(result.audit)
    out.print(f"audit.json   {result.audit_path}")
    if result.report_path:
        out.print(f"report.html  {result.report_path}")
    for name, folder in result.exports.items():
        out.print(f"{name}  {folder}")


def print_summary(audit: dict) -> None:
    s, timing = audit["summary"], audit["timing"]
    table = Table(title=f"memorization audit: {s['files']} files, {s['bytes']:,} bytes")
    table.add_column("directory", no_wrap=True, min_width=14)
    for column in ("files", "verbatim", "bytes", "edit", f"{s['k']}-extr.", "Pythia"):
        table.add_column(column, justify="right")

    def row(name, g, style=None):
        table.add_row(name, f"{g['files']}", _pct(g['verbatim_pct']), _pct(g['bytes_reproduced_pct']),
                      _score(g['edit_similarity']), _pct(g["k_extractable_pct"]), _score(g["pythia_score"]),
                      style=style)

    for name, g in audit["by_directory"].items():
        row(name, g)
    row("total", s, "bold")
    out.print(table)
    out.print("bytes: share of the original reproduced in order; edit: normalized edit similarity; "
              f"{s['k']}-extr.: {s['k']}-extractable samples; Pythia: memorization score", style="dim")
    regen = timing["regeneration"]
    out.print(f"regeneration {regen['tokens']:,} tokens in {regen['seconds']:.1f} s "
              f"({regen['tokens'] / max(regen['seconds'], 1e-9):,.0f} tokens/s); extraction samples: "
              f"{s['k_samples']:,} ({s['k']}+{s['k']} tokens) and {s['pythia_samples']:,} "
              f"({s['pythia_prefix']}+{s['pythia_prefix']}), every {audit['method']['extraction_every']} tokens; "
              f"total {timing['seconds']:.1f} s")
    lm = audit.get("lm_extraction")
    if lm:
        out.print(f"lm-extraction-benchmark setting: {lm['exact']:,} of {lm['examples']:,} 50-token suffixes exact "
                  f"(recall {_score(lm['recall'])}; at 100 wrong guesses {_score(lm['recall_at_100_errors'])})")
    print_decoders(audit)
    margin = audit.get("margin")
    if margin:
        out.print(margin_line(margin))
    chances = audit.get("sampling")
    if chances:
        out.print("sampling certificate: expected files sampled verbatim from their path: " + "; ".join(
            f"{floored(g['expected_verbatim_files'], 2)} of {s['files']} at {g['description']}"
            for g in chances["settings"].values()))


def print_decoders(audit: dict) -> None:
    """One line per decoder the audit ran (audit.json's `decoders`, proof.stock): laam's engine, stock transformers
    and each GGUF, each from the bare path."""
    from laam.proof.stock import decoder_line

    for d in audit.get("decoders") or []:
        out.print(f"decoder {decoder_line(d)}", markup=False, highlight=False, soft_wrap=True)  # paths as text


def margin_line(m: dict) -> str:
    """The margin certificate in one line."""
    if m["min_margin"] is None:
        return "margin certificate: no body tokens"
    at = m["min_margin_at"]
    seq = m["sequential"]
    checked = (f"; {m['low_listed']} decoded again sequentially: {seq['agrees']} agree, {seq['differs']} differ, "
               f"{seq['diverged earlier']} diverged earlier" if m["low_listed"] else "")
    return (f"margin certificate: smallest margin {floored(m['min_margin'], 3)} logits ({at['path']} token "
            f"{at['position']}: {at['true']!r} over {at['rival']!r}); {m['wrong_tokens']:,} of {m['body_tokens']:,} "
            f"body tokens and path ends wrong, {m['under_threshold']:,} under {m['threshold']:g}{checked}")


def _pct(x):
    return pct(x, 1, missing="–")  # rounded down: 99.96% never prints as 100.0% (laam.figures)


def _score(x):
    return score(x, 3, missing="–")


# --- trace ---------------------------------------------------------------------------------------

@app.command("trace")
def trace_command(
    text: Annotated[str, typer.Argument(help="File to trace, or - for standard input.")],
    model_dir: Annotated[Path | None, typer.Option("--model", help="Trace against this model's training corpus "
                                                   "(instead of the corpus options).", envvar="LAAM_MODEL")] = None,
    min_length: Annotated[int, typer.Option(help="Shortest verbatim span reported, in bytes.")] = 80,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    source: Annotated[str, typer.Option(help="Kernel version, tarball or folder (when --model is not given).",
                                        envvar="LAAM_VERSION")] = "1.0",
    mirror: Mirror = DEFAULT_MIRROR, cache: Cache = default_cache(),
    filter_: Filter = "source", include: Include = None, exclude: Exclude = None,
    max_file_size: MaxFileSize = DEFAULT_MAX_FILE_SIZE, quiet: Quiet = False,
):
    """Find the longest spans of a text that occur verbatim in the training corpus, with file, lines, license.

    The suffix-array index is built once per corpus and cached beside its manifest.
    """
    from laam.model.info import read_model_info
    from laam.proof.trace import load_or_build_index, spans_to_json, trace_text

    query = sys.stdin.buffer.read() if text == "-" else _read(Path(text))
    if model_dir is not None:
        config = read_model_info(model_dir).corpus_config(cache)
    else:
        config = corpus_config(source, mirror, cache, filter_, include, exclude, max_file_size)
    corpus = load_corpus(config, progress=False)
    began = time.perf_counter()
    index, built = load_or_build_index(corpus)
    loaded = time.perf_counter()
    spans = trace_text(index, query, min_length, progress=not quiet)
    searched = time.perf_counter()
    if as_json:
        out.print_json(json.dumps({**spans_to_json(spans, query), "corpus": corpus.name,
                                   "index_seconds": loaded - began, "search_seconds": searched - loaded}))
        return
    for span in spans:
        out.print(span.describe(), highlight=False, soft_wrap=True)
    covered = sum(s.length for s in spans)
    share = 100.0 * covered / len(query) if query else 0.0
    out.print(f"[bold]{covered:,} of {len(query):,} bytes ({share:.1f}%) copy {corpus.name} verbatim in "
              f"{len(spans)} span(s) of >= {min_length} bytes[/]", soft_wrap=True)
    console.print(f"[dim]index {'built' if built else 'loaded'} in {loaded - began:.2f} s, "
                  f"search {searched - loaded:.2f} s[/]")


def _read(path: Path) -> bytes:
    if not path.is_file():
        raise LaamError(f"no such file: {path}")
    return path.read_bytes()
