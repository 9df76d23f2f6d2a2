"""`laam train` (one recipe, any device, resumable) and `laam run` (the whole pipeline of a preset).

Multi-process: `torchrun --nproc_per_node N -m laam train ...` (CPU: gloo; GPU: nccl), or
`accelerate launch --num_processes N -m laam train ...` on GPUs. The global batch stays
--batch-size windows whatever the number of processes.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from laam import LaamError
from laam.cli import (
    Cache,
    Exclude,
    Include,
    MaxFileSize,
    Mirror,
    Quiet,
    Source,
    app,
    console,
    default_tokenizer_dir,
)
from laam.corpus import DEFAULT_MAX_FILE_SIZE, CorpusConfig
from laam.fetch import DEFAULT_MIRROR, default_cache
from laam.presets import PRESETS, recipe

# glibc keeps returning freed activations to the OS and mapping them again each step; with these two
# settings the allocator keeps them (measured 1.15-1.25x faster training on CPU). They only work if set
# before the process starts, so `laam train`/`laam run` re-execute themselves once with them.
ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}


def ensure_allocator_settings(enabled: bool) -> None:
    if not enabled or not sys.platform.startswith("linux") or "pytest" in sys.modules:
        return
    if all(os.environ.get(k) == v for k, v in ALLOCATOR_ENV.items()) or os.environ.get("LAAM_REEXEC") == "0":
        return
    env = {**os.environ, **ALLOCATOR_ENV, "LAAM_REEXEC": "0"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(getattr(sys, "orig_argv", [sys.executable, *sys.argv])), env)


Preset = Annotated[str | None, typer.Option(help=f"Named recipe: {', '.join(PRESETS)}.")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="TOML/YAML recipe file (tables corpus, model, "
                                                 "train, stages; `preset = NAME` to start from a preset).")]
Out = Annotated[Path | None, typer.Option("--out", help="Run folder: checkpoints, metrics.jsonl, metrics.png and "
                                          "the final model/ (default: runs/PRESET).")]
Resume = Annotated[bool, typer.Option(help="Continue from the run folder's last checkpoint, exactly.")]
Overwrite = Annotated[bool, typer.Option(help="Delete an existing run folder first.")]
Allocator = Annotated[bool, typer.Option(help="Re-run with glibc allocator settings that speed up CPU training "
                                         "(MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1e11).")]


def build_configs(plan: dict, model_overrides: dict, train_overrides: dict):
    from laam.model import ModelConfig
    from laam.train import TrainConfig

    model_config = ModelConfig.from_dict({**plan.get("model", {}), **model_overrides})
    stages = plan.get("stages") or [{}]
    train_configs = [TrainConfig.from_dict({**plan.get("train", {}), **stage, **train_overrides}) for stage in stages]
    return model_config, train_configs


def run_pipeline(preset: str | None = "demo", config_file: Path | None = None, source: str = "1.0",
                 mirror: str = DEFAULT_MIRROR, cache: Path | None = None, corpus_overrides: dict | None = None,
                 tokenizer_dir: Path | None = None, model_overrides: dict | None = None,
                 train_overrides: dict | None = None, out: Path | None = None, resume: bool = False,
                 overwrite: bool = False, progress: bool = True) -> Path:
    """Fetch the corpus, train the tokenizer if it is missing, train every stage; return the final model folder.

    Later pipeline steps (audit, card) hook in after this returns.
    """
    from laam.corpus import load_corpus
    from laam.tokenizer import train_tokenizer
    from laam.train import train

    cache = Path(cache or default_cache())
    plan = recipe(preset, config_file)
    model_config, train_configs = build_configs(plan, model_overrides or {}, train_overrides or {})
    corpus_settings = {"filter": "source", "include": (), "exclude": (), "max_file_size": DEFAULT_MAX_FILE_SIZE,
                       **plan.get("corpus", {}), **{k: v for k, v in (corpus_overrides or {}).items() if v}}
    corpus_settings["include"] = tuple(corpus_settings["include"])
    corpus_settings["exclude"] = tuple(corpus_settings["exclude"])
    corpus = load_corpus(CorpusConfig(source=source, mirror=mirror, cache=cache, **corpus_settings), progress=progress)
    if not corpus.files:
        raise LaamError("the corpus selection is empty; check --include/--exclude")
    is_main = int(os.environ.get("RANK", "0")) == 0
    tokenizer_dir = Path(tokenizer_dir or default_tokenizer_dir(corpus, model_config.vocab_size))
    if not (tokenizer_dir / "tokenizer.json").is_file():
        if not is_main:  # in a multi-process launch, rank 0 trains it; the others wait for it
            while not (tokenizer_dir / "tokenizer.json").is_file():
                time.sleep(1)
        else:
            console.print(f"training a {model_config.vocab_size}-token tokenizer into {tokenizer_dir}")
            scratch = tokenizer_dir.with_name(f".{tokenizer_dir.name}-tmp-{os.getpid()}")
            train_tokenizer(corpus, scratch, model_config.vocab_size)
            os.rename(scratch, tokenizer_dir)
    out = Path(out or Path("runs") / plan["name"])
    if out.exists() and not resume and is_main:
        if overwrite:
            shutil.rmtree(out)
        elif any(out.iterdir()):
            raise LaamError(f"run folder {out} already exists: pass --resume to continue it, --overwrite to start "
                            "again, or another --out")
    init_from = None
    model_dir = None
    started = time.perf_counter()
    for i, config in enumerate(train_configs, 1):
        stage_dir = out if len(train_configs) == 1 else out / f"stage-{i}"
        if len(train_configs) > 1 and (stage_dir / "model" / "laam.json").is_file():
            console.print(f"stage {i} already finished in {stage_dir}")
            init_from = model_dir = stage_dir / "model"
            continue
        if len(train_configs) > 1:
            console.print(f"[bold]stage {i} of {len(train_configs)}[/]: batch {config.batch_size}, lr {config.lr}, "
                          f"{config.epochs} epochs" + (", from the previous stage's weights" if init_from else ""))
        stage_resume = resume and (stage_dir / "checkpoints").is_dir() and any((stage_dir / "checkpoints").iterdir())
        result = train(model_config, config, corpus, tokenizer_dir, stage_dir, cache, resume=stage_resume,
                       init_from=init_from, progress=progress,
                       facts={"preset": plan["name"], "stage": i, "stages": len(train_configs),
                              "pipeline_seconds": round(time.perf_counter() - started, 1)})
        if result.model_dir is None:
            raise typer.Exit(130)
        init_from = model_dir = result.model_dir
        if result.status == "memorized" and i < len(train_configs):
            console.print(f"memorized after stage {i}: the remaining stages are skipped")
            break
    return model_dir


@app.command("train")
def train_command(
    source: Source = "1.0", mirror: Mirror = DEFAULT_MIRROR, cache: Cache = default_cache(),
    preset: Preset = "demo", config: ConfigFile = None,
    filter_: Annotated[str | None, typer.Option("--filter", help="File selection: source or original "
                                                "(default: the preset's, else source).")] = None,
    include: Include = None, exclude: Exclude = None, max_file_size: MaxFileSize = DEFAULT_MAX_FILE_SIZE,
    tokenizer: Annotated[Path | None, typer.Option(help="Tokenizer folder (default: under the cache, trained "
                                                   "there if missing).")] = None,
    hidden_size: Annotated[int | None, typer.Option(help="Model width (default: the preset's).")] = None,
    intermediate_size: Annotated[int | None, typer.Option(help="MLP width.")] = None,
    layers: Annotated[int | None, typer.Option(help="Transformer layers.")] = None,
    heads: Annotated[int | None, typer.Option(help="Attention heads.")] = None,
    kv_heads: Annotated[int | None, typer.Option(help="Key/value heads (grouped-query attention).")] = None,
    context: Annotated[int | None, typer.Option(help="Most tokens the model reads (positions).")] = None,
    stride: Annotated[int | None, typer.Option(help="Tokens the window slides by past the context.")] = None,
    tie_embeddings: Annotated[bool | None, typer.Option("--tie-embeddings/--untie-embeddings",
                                                        help="Share input and output embeddings.")] = None,
    vocab_size: Annotated[int | None, typer.Option(help="Vocabulary size (tokenizer and model).")] = None,
    precision: Annotated[str | None, typer.Option(help="auto (float32 on CPU, bf16 autocast on CUDA), float32 "
                                                  "or bf16.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Windows per optimizer step, all processes together.")] = None,
    micro_batch_size: Annotated[int | None, typer.Option(help="Windows per forward pass per process (gradient "
                                                         "accumulation below the batch size).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    min_lr_ratio: Annotated[float | None, typer.Option(help="Final LR as a fraction of the peak.")] = None,
    warmup_steps: Annotated[int | None, typer.Option(help="Linear warm-up steps.")] = None,
    schedule: Annotated[str | None, typer.Option(help="LR decay after warm-up: cosine, linear, constant.")] = None,
    decay_steps: Annotated[int | None, typer.Option(help="Steps to decay over (0: the whole planned run).")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="AdamW weight decay.")] = None,
    grad_clip: Annotated[float | None, typer.Option(help="Gradient norm clip (0: off).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for initialisation and data order.")] = None,
    epochs: Annotated[float | None, typer.Option(help="Passes over every window.")] = None,
    max_steps: Annotated[int | None, typer.Option(help="Stop after this many optimizer steps (0: from "
                                                  "--epochs).")] = None,
    max_time: Annotated[float | None, typer.Option(help="Stop after this many seconds (0: no limit).")] = None,
    until_memorized: Annotated[bool | None, typer.Option("--until-memorized/--no-until-memorized",
                                                         help="Stop when greedy body accuracy reaches "
                                                         "--target.")] = None,
    target: Annotated[float | None, typer.Option(help="Accuracy that counts as memorized (default 1.0).")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Steps between memorization checks.")] = None,
    save_every: Annotated[int | None, typer.Option(help="Steps between checkpoints.")] = None,
    log_every: Annotated[int | None, typer.Option(help="Steps between metrics.jsonl rows (default 10).")] = None,
    eval_batch_size: Annotated[int | None, typer.Option(help="Windows per batch in the memorization check.")] = None,
    loss_chunk: Annotated[int | None, typer.Option(help="Rows per chunk of the fused LM head + loss (0: about 4M "
                                                   "logits a chunk on CPU, torch's choice on CUDA).")] = None,
    keep_checkpoints: Annotated[int | None, typer.Option(help="Checkpoints kept.")] = None,
    compile_: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads per process (0: cores / processes).")] = None,
    verify: Annotated[bool | None, typer.Option("--verify/--no-verify", help="Regenerate every file greedily "
                                                "from its path after training and compare.")] = None,
    report_to: Annotated[list[str] | None, typer.Option(help="Tracker: tensorboard, wandb or trackio "
                                                        "(repeatable).")] = None,
    out_dir: Out = None, resume: Resume = False, overwrite: Overwrite = False,
    allocator: Allocator = True, quiet: Quiet = False,
):
    """Train a Llama to memorize the corpus (fetches it and trains the tokenizer when missing)."""
    ensure_allocator_settings(allocator)
    model_overrides = {k: v for k, v in dict(
        hidden_size=hidden_size, intermediate_size=intermediate_size, num_layers=layers, num_heads=heads,
        num_kv_heads=kv_heads, context=context, stride=stride, tie_embeddings=tie_embeddings, vocab_size=vocab_size,
        precision=precision).items() if v is not None}
    values = dict(batch_size=batch_size, micro_batch_size=micro_batch_size, lr=lr, min_lr_ratio=min_lr_ratio,
                  warmup_steps=warmup_steps, schedule=schedule, decay_steps=decay_steps, weight_decay=weight_decay,
                  grad_clip=grad_clip, seed=seed, epochs=epochs, max_steps=max_steps, max_time=max_time,
                  until_memorized=until_memorized, target=target, eval_every=eval_every, save_every=save_every,
                  log_every=log_every, eval_batch_size=eval_batch_size, loss_chunk=loss_chunk,
                  keep_checkpoints=keep_checkpoints, compile=compile_, threads=threads, verify=verify,
                  report_to=report_to or None)
    train_overrides = {k: v for k, v in values.items() if v is not None}
    if config is not None and preset == "demo":
        preset = None  # the file names its own preset, if any
    model_dir = run_pipeline(preset, config, source, mirror, cache,
                             {"filter": filter_, "include": include, "exclude": exclude,
                              "max_file_size": max_file_size if max_file_size != DEFAULT_MAX_FILE_SIZE else None},
                             tokenizer, model_overrides, train_overrides, out_dir, resume, overwrite, not quiet)
    typer.echo(str(model_dir))


@app.command("run")
def run_command(
    source: Source = "1.0", mirror: Mirror = DEFAULT_MIRROR, cache: Cache = default_cache(),
    preset: Preset = "demo", config: ConfigFile = None, out_dir: Out = None, resume: Resume = False,
    overwrite: Overwrite = False, allocator: Allocator = True,
    threads: Annotated[int | None, typer.Option(help="CPU threads per process (default: cores / processes; 1 is "
                                                "faster on a machine busy with other work).")] = None,
    audit: Annotated[bool, typer.Option(help="Then audit the model (audit.json, report.html) and write its model "
                                        "card, as `laam audit` and `laam card` would.")] = True,
    compress: Annotated[bool, typer.Option(help="Before the audit, code the corpus under the model as `laam compress "
                                           "--out MODEL/corpus.laamz` would (round trip checked), so the report and "
                                           "card show its bits per byte against gzip, xz and zstd.")] = True,
    quiet: Quiet = False,
):
    """The whole pipeline of a preset: fetch, tokenizer, train until memorized, verify regeneration, compress, audit,
    card."""
    ensure_allocator_settings(allocator)
    started = time.perf_counter()
    if config is not None and preset == "demo":
        preset = None
    model_dir = run_pipeline(preset, config, source, mirror, cache, out=out_dir, resume=resume, overwrite=overwrite,
                             progress=not quiet, train_overrides={"threads": threads} if threads else None)
    if compress:
        from laam.commands.compress import compress_command

        compress_command(model_dir, model_dir / "corpus.laamz", device="auto", threads=1, cache=cache, quiet=quiet)
    if audit:
        from laam.commands.audit import audit_command
        from laam.commands.card import card_command

        audit_command(model_dir, cache=cache, threads=threads, quiet=quiet)
        card_command(model_dir, cache=cache, quiet=quiet)
    console.print(f"pipeline finished in {time.perf_counter() - started:.0f} s; model folder {model_dir}")
    typer.echo(str(model_dir))

