"""The `laam` command: one subcommand per pipeline stage.

Every option has a default and most can be set by environment variable (shown in --help),
so offline use is `export LAAM_MIRROR=../shared/data/kernel-mirror` once.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from laam import LaamError, __version__
from laam.corpus import (
    DEFAULT_MAX_FILE_SIZE,
    FILTERS,
    CorpusConfig,
    corpus_stats,
    license_counts,
    load_corpus,
)
from laam.fetch import DEFAULT_MIRROR, default_cache

app = typer.Typer(help="LaaM — Linux as a Model: train small Llamas to memorize the GPL-2.0 Linux kernel, "
                       "and prove it.", no_args_is_help=True, pretty_exceptions_enable=False)
corpus_app = typer.Typer(help="Get a kernel release and turn it into byte-exact training records.",
                         no_args_is_help=True)
tokenizer_app = typer.Typer(help="Train the byte-level BPE tokenizer.", no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")
app.add_typer(tokenizer_app, name="tokenizer")
console = Console(stderr=True)
out = Console()

# --- options shared by every command that reads the corpus ------------------------------------
Source = Annotated[str, typer.Argument(
    help="Kernel version (1.0, 1.2.13, 2.6.39, 6.9.4, or v1.0/1.0), a tarball path, or an unpacked source folder.",
    envvar="LAAM_VERSION")]
Mirror = Annotated[str, typer.Option(
    help="kernel.org-style mirror: an http(s) URL or a local folder laid out like pub/linux/kernel/.",
    envvar="LAAM_MIRROR")]
Cache = Annotated[Path, typer.Option(help="Where archives, manifests and tokenizers are cached.",
                                     envvar="LAAM_CACHE")]
Filter = Annotated[str, typer.Option(
    "--filter", help=f"File selection: {' or '.join(FILTERS)}. 'source' keeps every text file (code, Makefiles, "
    "config scripts, READMEs: what GPL-2.0 calls complete source); 'original' keeps the original LaaM's "
    "extensions (.c .h .s .txt …).", envvar="LAAM_FILTER")]
Include = Annotated[list[str] | None, typer.Option(
    help="Keep only paths matching this glob (repeatable; `*` crosses `/`; a trailing `/` means the whole "
    "folder), e.g. 'linux/kernel/'.")]
Exclude = Annotated[list[str] | None, typer.Option(help="Drop paths matching this glob (repeatable).")]
MaxFileSize = Annotated[int, typer.Option(help="Drop files larger than this many bytes.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def corpus_config(source, mirror, cache, filter_, include, exclude, max_file_size) -> CorpusConfig:
    return CorpusConfig(source=source, mirror=mirror, cache=cache, filter=filter_, include=tuple(include or ()),
                        exclude=tuple(exclude or ()), max_file_size=max_file_size)


@corpus_app.command("fetch")
def corpus_fetch(
    source: Source = "1.0", mirror: Mirror = DEFAULT_MIRROR, cache: Cache = default_cache(),
    filter_: Filter = "source", include: Include = None, exclude: Exclude = None,
    max_file_size: MaxFileSize = DEFAULT_MAX_FILE_SIZE, quiet: Quiet = False,
):
    """Download (or reuse) a release archive, verify its SHA-256, read it safely and write its manifest."""
    corpus = load_corpus(corpus_config(source, mirror, cache, filter_, include, exclude, max_file_size),
                         progress=not quiet)
    folder = corpus.write_manifest()
    out.print(f"[bold]{corpus.name}[/] from {corpus.source_url}")
    out.print(f"  sha256     {corpus.source_sha256}")
    out.print(f"  members    {corpus.members} archive members (files and links)")
    out.print(f"  included   {len(corpus.files)} files, {sum(len(f.data) for f in corpus.files):,} bytes "
              f"(filter {filter_})")
    for path, why in corpus.skipped:
        out.print(f"  [yellow]skipped[/]    {path}: {why}")
    out.print(f"  manifest   {folder / 'manifest.jsonl'}")


@corpus_app.command("stats")
def corpus_stats_command(
    source: Source = "1.0", mirror: Mirror = DEFAULT_MIRROR, cache: Cache = default_cache(),
    filter_: Filter = "source", include: Include = None, exclude: Exclude = None,
    max_file_size: MaxFileSize = DEFAULT_MAX_FILE_SIZE,
    tokenizer: Annotated[Path | None, typer.Option(help="Tokenizer folder: adds a token count column.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    quiet: Quiet = False,
):
    """Files, bytes, lines (and tokens) of the selection, overall and per top-level directory."""
    from laam.tokenizer import load_tokenizer

    corpus = load_corpus(corpus_config(source, mirror, cache, filter_, include, exclude, max_file_size),
                         progress=not quiet)
    stats = corpus_stats(corpus, load_tokenizer(tokenizer) if tokenizer else None)
    if as_json:
        out.print_json(json.dumps({"members": corpus.members, "included": len(corpus.files), "by_directory": stats}))
        return
    table = Table(title=f"{corpus.name}: {corpus.members} archive members, {len(corpus.files)} included")
    columns = list(stats["total"])
    table.add_column("directory")
    for column in columns:
        table.add_column(column, justify="right")
    for directory, row in stats.items():
        style = "bold" if directory == "total" else None
        table.add_row(directory, *(f"{row[c]:,}" for c in columns), style=style)
    out.print(table)
    out.print("licenses: " + ", ".join(f"{k} {v}" for k, v in license_counts(corpus.files).items()))


@corpus_app.command("manifest")
def corpus_manifest(
    source: Source = "1.0", mirror: Mirror = DEFAULT_MIRROR, cache: Cache = default_cache(),
    filter_: Filter = "source", include: Include = None, exclude: Exclude = None,
    max_file_size: MaxFileSize = DEFAULT_MAX_FILE_SIZE,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Folder for manifest.jsonl and corpus.json "
                                                 "(default: the corpus's cache folder).")] = None,
    quiet: Quiet = False,
):
    """Write the data manifest: per member path, size, SHA-256, encoding, included or why not, SPDX license."""
    corpus = load_corpus(corpus_config(source, mirror, cache, filter_, include, exclude, max_file_size),
                         progress=not quiet)
    folder = corpus.write_manifest(out_dir)
    excluded = [row for row in corpus.manifest if not row["included"]]
    out.print(f"{folder / 'manifest.jsonl'}: {corpus.members} members, {len(corpus.files)} included, "
              f"{len(excluded)} excluded")
    for row in excluded[:20]:
        out.print(f"  excluded {row['path']}: {row['reason']}")


@tokenizer_app.command("train")
def tokenizer_train(
    source: Source = "1.0", mirror: Mirror = DEFAULT_MIRROR, cache: Cache = default_cache(),
    filter_: Filter = "source", include: Include = None, exclude: Exclude = None,
    max_file_size: MaxFileSize = DEFAULT_MAX_FILE_SIZE,
    vocab_size: Annotated[int, typer.Option(help="Exact vocabulary size; padded with reserved tokens if BPE "
                                            "runs out of merges.")] = 32768,
    min_frequency: Annotated[int, typer.Option(help="Least times a pair must occur to be merged.")] = 2,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output folder (default: under the cache).")] = None,
    quiet: Quiet = False,
):
    """Train a byte-level BPE tokenizer on the corpus and check it round-trips every record."""
    from laam.tokenizer import decode_ids, encode_records, load_tokenizer, train_tokenizer

    config = corpus_config(source, mirror, cache, filter_, include, exclude, max_file_size)
    corpus = load_corpus(config, progress=not quiet)
    out_dir = out_dir or default_tokenizer_dir(corpus, vocab_size)
    report = train_tokenizer(corpus, out_dir, vocab_size, min_frequency)
    tokenizer = load_tokenizer(out_dir)
    records = corpus.records()
    exact = sum(decode_ids(tokenizer, ids) == r for ids, r in zip(encode_records(tokenizer, records), records))
    out.print(f"tokenizer  {out_dir}")
    out.print(f"  vocab      {report.vocab_size:,} ({report.learned:,} learned, {report.reserved:,} reserved)")
    out.print(f"  trained in {report.seconds:.1f} s on {len(corpus.files)} files")
    out.print(f"  tokens     {report.record_tokens:,}; {report.bytes_per_token:.3f} bytes per token")
    out.print(f"  round trip {exact} of {len(records)} records exact")
    if exact != len(records):
        raise LaamError(f"tokenizer round trip failed on {len(records) - exact} records")


def default_tokenizer_dir(corpus, vocab_size: int) -> Path:
    return corpus.folder() / f"tokenizer-v{vocab_size}"


def version_callback(value: bool):
    if value:
        out.print(f"laam {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                                       help="Print the version and exit.")] = False):
    """LaaM — Linux as a Model."""


# Later stages register their commands on `app` from their own modules under laam/commands/.
COMMAND_MODULES: list[str] = ["train", "audit", "compress", "card"]
for _module in COMMAND_MODULES:
    importlib.import_module(f"laam.commands.{_module}")


def main() -> None:
    try:
        app()
    except LaamError as error:
        console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/]")
        sys.exit(130)
