"""The `laam` Typer app and the options its commands share. Command modules (laam/cli/*.py) register on `app`;
this module imports none of them (laam/cli/__init__.py does)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from laam import __version__
from laam.data.corpus import FILTERS, CorpusConfig
from laam.progress import console  # noqa: F401 (commands print status to stderr through it)

app = typer.Typer(help="LaaM — Linux as a Model: train small Llamas to memorize the GPL-2.0 Linux kernel, "
                       "and prove it.", no_args_is_help=True, pretty_exceptions_enable=False)
out = Console(soft_wrap=True)  # results, on stdout; never hard-wrapped: a path and its figures stay on one line

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
    "folder), written from the kernel's root whatever the archive's top folder, e.g. 'kernel/', 'lib/lzo/' "
    "(the older 'linux/kernel/' works too).")]
Exclude = Annotated[list[str] | None, typer.Option(help="Drop paths matching this glob (repeatable; written like "
                                                   "--include, e.g. 'lib/malloc.c').")]
MaxFileSize = Annotated[int, typer.Option(help="Drop files larger than this many bytes.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def corpus_config(source, mirror, cache, filter_, include, exclude, max_file_size) -> CorpusConfig:
    return CorpusConfig(source=source, mirror=mirror, cache=cache, filter=filter_, include=tuple(include or ()),
                        exclude=tuple(exclude or ()), max_file_size=max_file_size)


ModelDir = Annotated[Path, typer.Option("--model", help="Model folder (save_pretrained weights, tokenizer, laam.json).",
                                        envvar="LAAM_MODEL")]


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
