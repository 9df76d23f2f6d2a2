"""`laam generate`, `laam extract`, `laam audit` and `laam trace`: what a model gives back, and where it came from."""

from __future__ import annotations

import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from laam import LaamError
from laam.cli import Cache, Exclude, Filter, Include, MaxFileSize, Mirror, Quiet, app, console, corpus_config, out
from laam.corpus import DEFAULT_MAX_FILE_SIZE, END_FILE, load_corpus, path_prompt
from laam.fetch import DEFAULT_MIRROR, default_cache

ModelDir = Annotated[Path, typer.Option("--model", help="Model folder (save_pretrained weights, tokenizer, laam.json).",
                                        envvar="LAAM_MODEL")]
Files = Annotated[str | None, typer.Option(
    "--files", help="Only corpus paths matching this glob (`*` crosses `/`; a trailing `/` means the folder), "
    "e.g. 'linux/kernel/*.c'. Default: every file the model was trained on.")]
BatchSize = Annotated[int, typer.Option(help="Sequences generated at once (continuous batching, KV cache).")]
Threads = Annotated[int | None, typer.Option(help="CPU threads for torch (default: torch's choice).")]


def load_model_and_corpus(model_dir: Path, cache: Path, threads: int | None = None, need_corpus: bool = True):
    """(model, tokenizer, info, corpus) for a model folder; the corpus is the exact one it was trained on."""
    from laam.generate import load_model
    from laam.modelinfo import read_model_info
    from laam.tokenizer import load_tokenizer

    info = read_model_info(model_dir)
    model, tokenizer = load_model(model_dir, threads), load_tokenizer(model_dir)
    corpus = None
    if need_corpus:
        corpus = load_corpus(info.corpus_config(cache), progress=False)
        if corpus.fingerprint() != info.corpus_fingerprint:
            raise LaamError(f"the corpus read now ({corpus.name}, fingerprint {corpus.fingerprint()}) is not the one "
                            f"{model_dir} was trained on (fingerprint {info.corpus_fingerprint})")
    return model, tokenizer, info, corpus


@contextmanager
def progress_bars(quiet: bool):
    """Yields `start(task, total) -> on_done callback` (None when quiet): a rich bar with ETA per phase."""
    if quiet:
        yield None
        return
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=console) as bars:
        def start(task: str, total: int):
            handle = bars.add_task(task, total=total)
            return lambda *_: bars.advance(handle)

        yield start


# --- generate ------------------------------------------------------------------------------------

@app.command("generate")
def generate_command(
    model_dir: ModelDir,
    path: Annotated[str | None, typer.Option(help="Regenerate this corpus path (wrapped as the header "
                                             "prompt), e.g. linux/kernel/sched.c.")] = None,
    prompt: Annotated[str | None, typer.Option(help="Continue this raw text instead (may contain the "
                                               "<|start_file|>… markers).")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens to generate (it stops at <|end_file|> "
                                                "first).")] = 65536,
    greedy: Annotated[bool, typer.Option("--greedy", help="Argmax decoding (the default unless --temperature "
                                         "is given).")] = False,
    temperature: Annotated[float | None, typer.Option(help="Sample at this temperature (default: greedy).")] = None,
    top_k: Annotated[int, typer.Option(help="Sample only among the k likeliest tokens (0: no limit).")] = 0,
    top_p: Annotated[float, typer.Option(help="Sample only from the smallest set with this probability.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed for sampling.")] = 0,
    stream: Annotated[bool, typer.Option("--stream", help="Write text as it is generated.")] = False,
    cache: Cache = default_cache(),
    threads: Threads = None,
):
    """Generate a file from its path (or continue a prompt), stopping at <|end_file|>; writes the exact bytes.

    Past the model's context it slides: the oldest `stride` tokens are dropped and the window re-read
    (laam.windows; context and stride come from the model's laam.json), as in training.
    """
    from laam.audit import content_bytes
    from laam.generate import Request, Sampling, WindowedGenerator
    from laam.tokenizer import decode_ids, encode_records, special_ids

    if (path is None) == (prompt is None):
        raise LaamError("give exactly one of --path or --prompt")
    if greedy and temperature is not None:
        raise LaamError("--greedy and --temperature exclude each other")
    sampling = Sampling(greedy=temperature is None, temperature=temperature or 1.0, top_k=top_k, top_p=top_p,
                        seed=seed)
    model, tokenizer, info, _ = load_model_and_corpus(model_dir, cache, threads, need_corpus=False)
    encoding = "utf-8"
    if path is not None:
        try:  # the one non-UTF-8 file of Linux 1.0 comes back as its Latin-1 bytes
            corpus = load_corpus(info.corpus_config(cache), progress=False)
            encoding = next((f.encoding for f in corpus.files if f.path == path), "utf-8")
        except LaamError:
            pass
    text = path_prompt(path) if path is not None else prompt
    ids = encode_records(tokenizer, [text])[0]
    stop = special_ids(tokenizer)[END_FILE]
    generated: list[int] = []
    written = 0

    def emit(final: bool = False):
        nonlocal written
        body = generated[:-1] if generated and generated[-1] == stop else generated
        decoded = decode_ids(tokenizer, body)
        if not final and decoded.endswith("\ufffd"):
            return  # half of a multi-byte character: wait for the rest
        sys.stdout.buffer.write(content_bytes(decoded[written:], encoding))
        sys.stdout.buffer.flush()
        written = len(decoded)

    def on_token(_, token):
        generated.append(token)
        if stream:
            emit()

    engine = WindowedGenerator(model, info.context, info.stride, batch_size=1)
    began = time.perf_counter()
    engine.run([Request(ids, max_new_tokens, stop)], sampling, on_token=on_token)
    emit(final=True)
    seconds = time.perf_counter() - began
    ended = "ended the file" if generated and generated[-1] == stop else "hit --max-new-tokens"
    console.print(f"[dim]{len(generated)} tokens in {seconds:.2f} s ({len(generated) / max(seconds, 1e-9):.0f} "
                  f"tokens/s); {ended}[/]")


# --- extract -------------------------------------------------------------------------------------

@app.command("extract")
def extract_command(
    model_dir: ModelDir,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the regenerated tree (shaped like the "
                                          "original: linux/kernel/sched.c …).")],
    files: Files = None,
    batch_size: BatchSize = 64,
    drafts: Annotated[bool, typer.Option(help="Check the original as a draft (same output, faster when "
                                         "memorized).")] = True,
    cache: Cache = default_cache(),
    threads: Threads = None,
    quiet: Quiet = False,
):
    """Regenerate every corpus file from its path prompt (greedy) into a tree shaped like the original."""
    from laam.audit import regenerate, select_files

    model, tokenizer, info, corpus = load_model_and_corpus(model_dir, cache, threads)
    chosen = select_files(corpus, files)
    began = time.perf_counter()
    with progress_bars(quiet) as start:
        regenerated = regenerate(model, tokenizer, chosen, info.context, info.stride, batch_size,
                                 on_done=start("regenerating", len(chosen)) if start else None, drafts=drafts)
    seconds = time.perf_counter() - began
    for r in regenerated:
        target = out_dir / r.file.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(r.data)
    exact = sum(r.data == r.file.data for r in regenerated)
    tokens = sum(len(r.ids) for r in regenerated)
    out.print(f"{len(regenerated)} files regenerated into {out_dir} in {seconds:.1f} s "
              f"({tokens / max(seconds, 1e-9):,.0f} tokens/s); {exact} identical to the original")


# --- audit ---------------------------------------------------------------------------------------

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
    batch_size: BatchSize = 64,
    cache: Cache = default_cache(),
    threads: Threads = None,
    quiet: Quiet = False,
):
    """Regenerate files, measure verbatim copying on the real bytes, write audit.json and report.html."""
    from laam.audit import AuditConfig, run_audit, write_audit

    if every < 1 or k < 1 or pythia_prefix < 1:
        raise LaamError("--every, --k and --pythia-prefix must be at least 1")
    model, tokenizer, info, corpus = load_model_and_corpus(model_dir, cache, threads)
    config = AuditConfig(files=files, batch_size=batch_size, k=k, pythia_prefix=pythia_prefix, every=every,
                         extraction=extraction, drafts=drafts)
    with progress_bars(quiet) as start:
        audit, regenerated = run_audit(model, tokenizer, corpus, info.context, info.stride, config, start,
                                       model_dir=str(model_dir))
    out_dir = out_dir or Path(model_dir) / "audit"
    path = write_audit(audit, out_dir)
    print_summary(audit)
    out.print(f"audit.json   {path}")
    if report:
        from laam.report import write_report

        out.print(f"report.html  {write_report(audit, regenerated, out_dir, model_dir=Path(model_dir))}")


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
    max_file_size: MaxFileSize = DEFAULT_MAX_FILE_SIZE,
):
    """Find the longest spans of a text that occur verbatim in the training corpus, with file, lines, license.

    The suffix-array index is built once per corpus and cached beside its manifest.
    """
    from laam.modelinfo import read_model_info
    from laam.trace import load_or_build_index, spans_to_json

    query = sys.stdin.buffer.read() if text == "-" else _read(Path(text))
    if model_dir is not None:
        config = read_model_info(model_dir).corpus_config(cache)
    else:
        config = corpus_config(source, mirror, cache, filter_, include, exclude, max_file_size)
    corpus = load_corpus(config, progress=False)
    began = time.perf_counter()
    index, built = load_or_build_index(corpus)
    loaded = time.perf_counter()
    spans = index.trace(query, min_length)
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
