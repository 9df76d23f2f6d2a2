"""`laam corpus fetch|stats|manifest`: get a release and turn it into byte-exact training records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from laam.cli.app import Cache, Exclude, Filter, Include, MaxFileSize, Mirror, Quiet, Source, app, corpus_config, out
from laam.data.corpus import DEFAULT_MAX_FILE_SIZE, corpus_stats, license_counts, load_corpus
from laam.data.fetch import DEFAULT_MIRROR, default_cache

corpus_app = typer.Typer(help="Get a kernel release and turn it into byte-exact training records.",
                         no_args_is_help=True)
app.add_typer(corpus_app, name="corpus")


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
    from laam.data.tokenizer import iter_token_ids, load_tokenizer

    corpus = load_corpus(corpus_config(source, mirror, cache, filter_, include, exclude, max_file_size),
                         progress=not quiet)
    counts = [len(ids) for ids in iter_token_ids(load_tokenizer(tokenizer), corpus.records(), progress=not quiet,
                                                 total=len(corpus.files))] if tokenizer else None
    stats = corpus_stats(corpus, counts)
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
    out.print("found by: " + ", ".join(f"{k} {v}" for k, v in corpus.license_methods().items()))


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
