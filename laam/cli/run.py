"""`laam run`: the whole pipeline of a preset (pipeline.run), printing each stage's result as its own command does.
Its --threads flag is TrainConfig's (laam/cli/options.py)."""

from __future__ import annotations

from typing import Annotated

import typer

from laam.cli.allocator import ensure_allocator_settings
from laam.cli.app import (
    Allocator,
    Cache,
    ConfigFile,
    Mirror,
    Out,
    Overwrite,
    Preset,
    Quiet,
    Resume,
    Source,
    StartFresh,
    app,
    console,
)
from laam.cli.options import Group, with_settings
from laam.data.fetch import DEFAULT_MIRROR, default_cache
from laam.train.config import TrainConfig


@app.command("run")
@with_settings(train=Group(TrainConfig, "Training (default: the recipe's)", names=("threads",)))
def run_command(
    source: Source = "1.0", mirror: Mirror = DEFAULT_MIRROR, cache: Cache = default_cache(),
    preset: Preset = "demo", config: ConfigFile = None, out_dir: Out = None, resume: Resume = False,
    start_fresh: StartFresh = False, overwrite: Overwrite = False, allocator: Allocator = True,
    audit: Annotated[bool, typer.Option(help="Then audit the model (audit.json, report.html) and write its model "
                                        "card, as `laam audit` and `laam card` would.")] = True,
    compress: Annotated[bool, typer.Option(help="Before the audit, code the corpus under the model as `laam compress "
                                           "--out MODEL/corpus.laamz` would (round trip checked), so the report and "
                                           "card show its bits per byte against gzip, xz and zstd.")] = True,
    quiet: Quiet = False,
    *, train: dict,
):
    """The whole pipeline of a preset: fetch, tokenizer, train until memorized, verify regeneration, compress, audit,
    card."""
    from laam.cli.audit import print_audit  # here: importing them registers their commands, after this one
    from laam.cli.compress import print_compression
    from laam.cli.publish import print_card
    from laam.pipeline import run

    ensure_allocator_settings(allocator)
    if config is not None and preset == "demo":
        preset = None
    result = run(preset, config, source, mirror, cache, out_dir, resume, overwrite, train.get("threads"), compress,
                 audit, progress=not quiet, start_fresh=start_fresh)
    if result.compression:
        print_compression(result.compression)
    if result.audit:
        print_audit(result.audit)
        print_card(result.card, result.model_dir)
    console.print(f"pipeline finished in {result.seconds:.0f} s; model folder {result.model_dir}")
    typer.echo(str(result.model_dir))
