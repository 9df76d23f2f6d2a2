"""`laam audit` and `laam trace`: how much of the corpus a model gives back, and where any text came from."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from laam.cli.app import (
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
    margins: Annotated[bool, typer.Option(help="Margin certificate: every body token's fp32 logit gap (true token "
                                          "minus the best other), written to margins.npz and summarized.")] = True,
    safe_margin: Annotated[float | None, typer.Option(help="Body tokens with a smaller margin are decoded again "
                                                      "one token at a time and listed (default 1.0: laam train's "
                                                      "--min-margin default).")] = None,
    low_limit: Annotated[int, typer.Option(help="List and re-decode at most this many low-margin tokens (the "
                                           "lowest).")] = 100,
    lm_examples: Annotated[int | None, typer.Option(help="Examples of the lm-extraction-benchmark setting "
                                                    "(50-token prefix, 50-token suffix) drawn from the corpus "
                                                    "(default 1,000, the size of its test set).")] = None,
    export: Annotated[list[str] | None, typer.Option(help="Also write: lm-extraction (the lm-extraction-benchmark's "
                                                     "guess CSV, prefixes and true suffixes, in OUT/lm-extraction/)."
                                                     )] = None,
    batch_size: BatchSize = 64,
    cache: Cache = default_cache(),
    threads: Threads = None,
    quiet: Quiet = False,
):
    """Regenerate files, measure verbatim copying on the real bytes, write audit.json and report.html."""
    from laam.proof.audit import AuditConfig, audit_model

    given = {"safe_margin": safe_margin, "lm_examples": lm_examples}
    config = AuditConfig(files=files, batch_size=batch_size, k=k, pythia_prefix=pythia_prefix, every=every,
                         extraction=extraction, drafts=drafts, certificate=margins, low_limit=low_limit,
                         export=tuple(export or ()), **{n: v for n, v in given.items() if v is not None})
    with phases(not quiet, console) as start:
        result = audit_model(model_dir, config, cache, threads, out_dir, report, start)
    print_audit(result)


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
        table.add_row(name, f"{g['files']}", f"{g['verbatim_pct']:.1f}%", f"{g['bytes_reproduced_pct']:.1f}%",
                      f"{g['edit_similarity']:.3f}", _pct(g["k_extractable_pct"]), _score(g["pythia_score"]),
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
                  f"(recall {lm['recall']:.3f}; at 100 wrong guesses {lm['recall_at_100_errors']:.3f})")
    margin = audit.get("margin")
    if margin:
        out.print(margin_line(margin))


def margin_line(m: dict) -> str:
    """The margin certificate in one line."""
    if m["min_margin"] is None:
        return "margin certificate: no body tokens"
    at = m["min_margin_at"]
    seq = m["sequential"]
    checked = (f"; {m['low_listed']} decoded again sequentially: {seq['agrees']} agree, {seq['differs']} differ, "
               f"{seq['diverged earlier']} diverged earlier" if m["low_listed"] else "")
    return (f"margin certificate: smallest margin {m['min_margin']:.3f} logits ({at['path']} token {at['position']}: "
            f"{at['true']!r} over {at['rival']!r}); {m['wrong_tokens']:,} of {m['body_tokens']:,} body tokens wrong, "
            f"{m['under_threshold']:,} under {m['threshold']:g}{checked}")


def _pct(x):
    return "–" if x is None else f"{x:.1f}%"


def _score(x):
    return "–" if x is None else f"{x:.3f}"


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
