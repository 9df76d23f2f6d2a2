"""The whole pipeline as plain functions: fetch -> tokenizer -> train -> compress -> audit -> card.

`laam train` runs `train_recipe`; `laam run` runs `run`. Each step is the same function its own command
calls, so the pipeline adds only the order and the hand-over of folders (docs/architecture.md).
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass
from pathlib import Path

from laam.data.corpus import DEFAULT_MAX_FILE_SIZE, Corpus, CorpusConfig, load_corpus
from laam.data.fetch import DEFAULT_MIRROR, default_cache
from laam.data.tokenizer import default_tokenizer_dir, drop_damaged_tokenizer, train_tokenizer
from laam.errors import Interrupted, LaamError
from laam.io import seal_fault
from laam.model.config import ModelConfig
from laam.model.presets import recipe
from laam.progress import console
from laam.publish.finish import finish_model
from laam.train.checkpoint import checkpoints
from laam.train.config import TrainConfig
from laam.train.run_folder import RunFolder, check_run_folder
from laam.validation import SettingError


def build_configs(plan: dict, model_overrides: dict, train_overrides: dict) -> tuple[ModelConfig, list[TrainConfig]]:
    """The model config and one training config per stage of a recipe, with command-line overrides on top."""
    model_config = ModelConfig.from_dict({**plan.get("model", {}), **model_overrides})
    stages = plan.get("stages") or [{}]
    train_configs = [TrainConfig.from_dict({**plan.get("train", {}), **stage, **train_overrides}) for stage in stages]
    return model_config, train_configs


def corpus_config(plan: dict, source: str, mirror: str, cache: Path, overrides: dict | None) -> CorpusConfig:
    """The recipe's corpus selection, with the command line's non-empty overrides on top."""
    settings = {"filter": "source", "include": (), "exclude": (), "max_file_size": DEFAULT_MAX_FILE_SIZE,
                **plan.get("corpus", {}), **{k: v for k, v in (overrides or {}).items() if v not in (None, [], ())}}
    for key in ("include", "exclude"):  # a list in a recipe file; one string would be a tuple of its characters
        settings[key] = tuple(settings[key]) if isinstance(settings[key], list) else settings[key]
    return CorpusConfig(source=source, mirror=mirror, cache=cache, **settings)


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def ensure_tokenizer(corpus: Corpus, vocab_size: int, tokenizer_dir: Path | None = None) -> Path:
    """The tokenizer folder, trained first if missing (in a multi-process launch rank 0 trains, the others wait)."""
    cached = tokenizer_dir is None  # laam's own cache entry, checked against its seal (a user's folder is theirs)
    tokenizer_dir = Path(tokenizer_dir or default_tokenizer_dir(corpus, vocab_size))
    if not is_main_process():  # rank 0 checks or trains it; the others wait until it is there (and sealed)
        while not (tokenizer_dir / "tokenizer.json").is_file() or (cached and seal_fault(tokenizer_dir)):
            time.sleep(1)
        return tokenizer_dir
    if cached:
        drop_damaged_tokenizer(tokenizer_dir)
    if not (tokenizer_dir / "tokenizer.json").is_file():
        console.print(f"training a {vocab_size}-token tokenizer into {tokenizer_dir}")
        train_tokenizer(corpus, tokenizer_dir, vocab_size, replace=False)
    return tokenizer_dir


def train_stages(plan: dict, model_config: ModelConfig, train_configs: list[TrainConfig], corpus: Corpus,
                 tokenizer_dir: Path, out: Path, cache: Path, resume: bool, progress: bool,
                 allow_changes: tuple[str, ...] = ()) -> Path:
    """Train every stage of a recipe in `out` (stage-N/ folders when there are several); the final model folder.

    Each stage after the first starts from the previous stage's weights; a stage that memorized ends the recipe."""
    from laam.train.loop import train

    init_from = model_dir = None
    started = time.perf_counter()
    several = len(train_configs) > 1
    for i, config in enumerate(train_configs, 1):
        stage_dir = out / f"stage-{i}" if several else out
        if several and (stage_dir / "model" / "laam.json").is_file():
            console.print(f"stage {i} already finished in {stage_dir}")
            init_from = model_dir = stage_dir / "model"
            continue
        if several:
            console.print(f"[bold]stage {i} of {len(train_configs)}[/]: batch {config.batch_size}, lr {config.lr}, "
                          f"{config.epochs} epochs" + (", from the previous stage's weights" if init_from else ""))
        stage_resume = resume and bool(checkpoints(stage_dir))
        result = train(model_config, config, corpus, tokenizer_dir, stage_dir, cache, resume=stage_resume,
                       init_from=init_from, progress=progress, allow_changes=allow_changes,
                       facts={"preset": plan["name"], "stage": i, "stages": len(train_configs),
                              "pipeline_seconds": round(time.perf_counter() - started, 1)})
        if result.model_dir is None:
            raise Interrupted(f"training stopped at step {result.steps}; continue with --resume")
        init_from = model_dir = result.model_dir
        if result.status == "memorized" and i < len(train_configs):
            console.print(f"memorized after stage {i}: the remaining stages are skipped")
            break
    return model_dir


def train_recipe(preset: str | None = "demo", config_file: Path | None = None, source: str = "1.0",
                 mirror: str = DEFAULT_MIRROR, cache: Path | None = None, corpus_overrides: dict | None = None,
                 tokenizer_dir: Path | None = None, model_overrides: dict | None = None,
                 train_overrides: dict | None = None, out: Path | None = None, resume: bool = False,
                 overwrite: bool = False, progress: bool = True, start_fresh: bool = False,
                 allow_changes: tuple[str, ...] = ()) -> Path:
    """Fetch the corpus, train the tokenizer if it is missing, train every stage; return the final model folder.

    The run folder is checked before any work (laam.train.run_folder) and locked while training writes to it."""
    cache = Path(cache or default_cache())
    plan = recipe(preset, config_file)
    try:
        model_config, train_configs = build_configs(plan, model_overrides or {}, train_overrides or {})
        corpus_settings = corpus_config(plan, source, mirror, cache, corpus_overrides)
    except SettingError as error:
        flags = {**(model_overrides or {}), **(train_overrides or {}), **(corpus_overrides or {})}
        if config_file is None or flags.get(error.key) is not None:
            raise
        raise LaamError(f"config file {config_file}: {error}") from error
    out = Path(out or Path("runs") / plan["name"])
    main = is_main_process()
    if main:
        check_run_folder(out, resume, overwrite, start_fresh)
    corpus = load_corpus(corpus_settings, progress=progress)
    tokenizer_dir = ensure_tokenizer(corpus, model_config.vocab_size, tokenizer_dir)
    folder = RunFolder(out, resume, overwrite, start_fresh, {"preset": plan["name"]}) if main \
        else contextlib.nullcontext()
    with folder:
        return train_stages(plan, model_config, train_configs, corpus, tokenizer_dir, out, cache, resume, progress,
                            allow_changes)


@dataclass
class PipelineResult:
    model_dir: Path
    compression: dict | None  # compression.json's content, when compressed
    audit: object | None  # proof.audit.AuditResult, when audited
    card: object | None  # publish.card.CardResult, when audited
    seconds: float


def run(preset: str | None = "demo", config_file: Path | None = None, source: str = "1.0",
        mirror: str = DEFAULT_MIRROR, cache: Path | None = None, out: Path | None = None, resume: bool = False,
        overwrite: bool = False, threads: int | None = None, compress: bool = True, audit: bool = True,
        progress: bool = True, start_fresh: bool = False) -> PipelineResult:
    """The whole pipeline of a preset: train until memorized, then what follows training (publish.finish): code
    the corpus under the model (compression.json), audit it (audit.json, report.html) and write its model card."""
    started = time.perf_counter()
    cache = Path(cache or default_cache())
    model_dir = train_recipe(preset, config_file, source, mirror, cache, out=out, resume=resume, overwrite=overwrite,
                             progress=progress, train_overrides={"threads": threads} if threads else None,
                             start_fresh=start_fresh)
    finished = finish_model(model_dir, cache, threads, compress, audit, progress)
    return PipelineResult(model_dir, finished.compression, finished.audit, finished.card, time.perf_counter() - started)
