"""The `laam` Typer app and the options its commands share. Command modules (laam/cli/*.py) register on `app`;
this module imports none of them (laam/cli/__init__.py does)."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from laam import __version__
from laam.data.corpus import CorpusConfig
from laam.model.presets import PRESETS
from laam.progress import console  # noqa: F401 (commands print status to stderr through it)
from laam.validation import help_of

app = typer.Typer(help="LaaM — Linux as a Model: train small Llamas to memorize the GPL-2.0 Linux kernel, "
                       "and prove it.", no_args_is_help=True, pretty_exceptions_enable=False)
out = Console(soft_wrap=True)  # results, on stdout; never hard-wrapped: a path and its figures stay on one line

# --- options shared by every command that reads the corpus (help: CorpusConfig's fields) --------
_CORPUS = {f.name: help_of(f) for f in fields(CorpusConfig)}
Source = Annotated[str, typer.Argument(help=_CORPUS["source"], envvar="LAAM_VERSION")]
Mirror = Annotated[str, typer.Option(help=_CORPUS["mirror"], envvar="LAAM_MIRROR")]
Cache = Annotated[Path, typer.Option(help=_CORPUS["cache"], envvar="LAAM_CACHE")]
Filter = Annotated[str, typer.Option("--filter", help=_CORPUS["filter"], envvar="LAAM_FILTER")]
Include = Annotated[list[str] | None, typer.Option(help=_CORPUS["include"])]
Exclude = Annotated[list[str] | None, typer.Option(help=_CORPUS["exclude"])]
MaxFileSize = Annotated[int, typer.Option(help=_CORPUS["max_file_size"])]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def corpus_config(source, mirror, cache, filter_, include, exclude, max_file_size) -> CorpusConfig:
    return CorpusConfig(source=source, mirror=mirror, cache=cache, filter=filter_, include=tuple(include or ()),
                        exclude=tuple(exclude or ()), max_file_size=max_file_size)


ModelDir = Annotated[Path, typer.Option("--model", help="Model folder (save_pretrained weights, tokenizer, laam.json).",
                                        envvar="LAAM_MODEL")]


# --- options shared by the commands that train (`laam train`, `laam run`) ----------------------
Preset = Annotated[str | None, typer.Option(help=f"Named recipe: {', '.join(PRESETS)}.")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="TOML/YAML recipe file (tables corpus, model, "
                                                 "train, stages; `preset = NAME` to start from a preset).")]
Out = Annotated[Path | None, typer.Option("--out", help="Run folder: checkpoints, metrics.jsonl, metrics.png and "
                                          "the final model/ (default: runs/PRESET).")]
Resume = Annotated[bool, typer.Option(help="Continue from the run folder's newest good checkpoint, exactly (a damaged "
                                      "one is reported and set aside). No checkpoint there is an error, unless "
                                      "--start-fresh.")]
StartFresh = Annotated[bool, typer.Option(help="With --resume: start a new run when the run folder holds no "
                                          "checkpoint yet, instead of stopping with an error.")]
Overwrite = Annotated[bool, typer.Option(help="Delete an existing run folder first (only one a LaaM run made, marked "
                                         "by laam-run.json; never the current or home folder).")]
Allocator = Annotated[bool, typer.Option(help="Re-run with glibc allocator settings that speed up CPU training "
                                         "and decoding (MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1e11).")]


def version_callback(value: bool):
    if value:
        out.print(f"laam {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: Annotated[bool, typer.Option("--version", callback=version_callback, is_eager=True,
                                                       help="Print the version and exit.")] = False,
                 debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of a file-system or "
                                                     "decoding fault instead of its one line (also: LAAM_DEBUG=1)."
                                                     )] = False):
    """LaaM — Linux as a Model."""
    if debug:
        os.environ["LAAM_DEBUG"] = "1"
