"""`laam train`: one recipe, any device, resumable. Its setting flags are made from CorpusConfig, ModelConfig and
TrainConfig (laam/cli/options.py); the options here are the run's own (where, resume, overwrite).

Multi-process: `torchrun --nproc_per_node N -m laam train ...` (CPU: gloo; GPU: nccl), or
`accelerate launch --num_processes N -m laam train ...` on GPUs. The global batch stays
--batch-size windows whatever the number of processes.
"""

from __future__ import annotations

from pathlib import Path
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
)
from laam.cli.options import Group, with_settings
from laam.data.corpus import CorpusConfig
from laam.data.fetch import DEFAULT_MIRROR, default_cache
from laam.model.config import ModelConfig
from laam.train.config import TrainConfig

# the panels of `laam train --help`; a flag given overrides the preset's or recipe file's value
RECIPE_FIRST = "(default: the recipe's, else the value shown)"
SETTINGS = {
    "corpus": Group(CorpusConfig, f"Corpus selection {RECIPE_FIRST}", skip=("source", "mirror", "cache")),
    "model": Group(ModelConfig, f"Model {RECIPE_FIRST}"),
    "train": Group(TrainConfig, f"Training {RECIPE_FIRST}"),
}


@app.command("train")
@with_settings(**SETTINGS)
def train_command(
    source: Source = "1.0", mirror: Mirror = DEFAULT_MIRROR, cache: Cache = default_cache(),
    preset: Preset = "demo", config: ConfigFile = None,
    tokenizer: Annotated[Path | None, typer.Option(help="Tokenizer folder (default: under the cache, trained "
                                                   "there if missing).")] = None,
    out_dir: Out = None, resume: Resume = False, start_fresh: StartFresh = False, overwrite: Overwrite = False,
    allow_change: Annotated[list[str] | None, typer.Option(help="With --resume: let this setting differ from the "
                                                           "checkpoint's on purpose (repeatable; e.g. seed, "
                                                           "batch_size, lr, decay_steps, corpus, tokenizer, model). "
                                                           "Recorded in laam.json's training history.")] = None,
    allocator: Allocator = True, quiet: Quiet = False,
    *, corpus: dict, model: dict, train: dict,
):
    """Train a Llama to memorize the corpus (fetches it and trains the tokenizer when missing)."""
    ensure_allocator_settings(allocator)
    if config is not None and preset == "demo":
        preset = None  # the file names its own preset, if any
    from laam.pipeline import train_recipe

    model_dir = train_recipe(preset, config, source, mirror, cache, corpus, tokenizer, model, train, out_dir, resume,
                             overwrite, not quiet, start_fresh=start_fresh, allow_changes=tuple(allow_change or ()))
    typer.echo(str(model_dir))
