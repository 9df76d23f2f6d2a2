"""`laam tokenizer train`: byte-level BPE of an exact vocabulary size, checked to round-trip every record."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from laam.cli.app import Cache, Exclude, Filter, Include, MaxFileSize, Mirror, Quiet, Source, app, corpus_config, out
from laam.data.corpus import DEFAULT_MAX_FILE_SIZE, load_corpus
from laam.data.fetch import DEFAULT_MIRROR, default_cache

tokenizer_app = typer.Typer(help="Train the byte-level BPE tokenizer.", no_args_is_help=True)
app.add_typer(tokenizer_app, name="tokenizer")


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
    from laam.data.tokenizer import default_tokenizer_dir, train_tokenizer

    config = corpus_config(source, mirror, cache, filter_, include, exclude, max_file_size)
    corpus = load_corpus(config, progress=not quiet)
    out_dir = out_dir or default_tokenizer_dir(corpus, vocab_size)
    report = train_tokenizer(corpus, out_dir, vocab_size, min_frequency, progress=not quiet)
    records = len(corpus.files)
    out.print(f"tokenizer  {out_dir}")
    out.print(f"  vocab      {report.vocab_size:,} ({report.learned:,} learned, {report.reserved:,} reserved)")
    out.print(f"  trained in {report.seconds:.1f} s on {len(corpus.files)} files")
    out.print(f"  tokens     {report.record_tokens:,}; {report.bytes_per_token:.3f} bytes per token")
    out.print(f"  round trip {records} of {records} records exact (checked before saving)")
