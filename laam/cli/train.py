"""`laam train` (one recipe, any device, resumable) and `laam run` (the whole pipeline of a preset).

Multi-process: `torchrun --nproc_per_node N -m laam train ...` (CPU: gloo; GPU: nccl), or
`accelerate launch --num_processes N -m laam train ...` on GPUs. The global batch stays
--batch-size windows whatever the number of processes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from laam.cli.app import Cache, Exclude, Include, MaxFileSize, Mirror, Quiet, Source, app, console
from laam.data.corpus import DEFAULT_MAX_FILE_SIZE
from laam.data.fetch import DEFAULT_MIRROR, default_cache
from laam.model.presets import PRESETS

# glibc keeps returning freed activations to the OS and mapping them again each step; with these two
# settings the allocator keeps them (measured 1.15-1.25x faster training on CPU). They only work if set
# before the process starts, so `laam train`/`laam run` re-execute themselves once with them.
ALLOCATOR_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}


def ensure_allocator_settings(enabled: bool) -> None:
    if not enabled or not sys.platform.startswith("linux"):  # tests set LAAM_REEXEC=0 to stay in one process
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
Resume = Annotated[bool, typer.Option(help="Continue from the run folder's newest good checkpoint, exactly (a damaged "
                                      "one is reported and set aside). No checkpoint there is an error, unless "
                                      "--start-fresh.")]
StartFresh = Annotated[bool, typer.Option(help="With --resume: start a new run when the run folder holds no "
                                          "checkpoint yet, instead of stopping with an error.")]
Overwrite = Annotated[bool, typer.Option(help="Delete an existing run folder first (only one a LaaM run made, marked "
                                         "by laam-run.json; never the current or home folder).")]
Allocator = Annotated[bool, typer.Option(help="Re-run with glibc allocator settings that speed up CPU training "
                                         "(MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=1e11).")]


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
    precision: Annotated[str | None, typer.Option(help="auto (bf16 autocast on CUDA; on CPU float32, or bf16 "
                                                  "autocast for the training step where the CPU has native bf16 and "
                                                  "it measured faster, checks staying float32), float32 or bf16."
                                                  )] = None,
    batch_size: Annotated[int | None, typer.Option(help="Windows per optimizer step, all processes together.")] = None,
    micro_batch_size: Annotated[int | None, typer.Option(help="Windows per forward pass per process (gradient "
                                                         "accumulation below the batch size).")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    min_lr_ratio: Annotated[float | None, typer.Option(help="Final LR as a fraction of the peak.")] = None,
    warmup_steps: Annotated[int | None, typer.Option(help="Linear warm-up steps.")] = None,
    schedule: Annotated[str | None, typer.Option(help="LR decay after warm-up: cosine, linear, constant.")] = None,
    decay_steps: Annotated[int | None, typer.Option(help="Steps to decay over (0: the whole planned run).")] = None,
    decay_at: Annotated[float | None, typer.Option(help="Hold the peak LR until a memorization check reaches this "
                                                   "fraction of body tokens, then decay over --decay-epochs "
                                                   "(0: decay over the whole planned run).")] = None,
    decay_epochs: Annotated[float | None, typer.Option(help="Epochs the decay lasts with --decay-at.")] = None,
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
    min_margin: Annotated[float | None, typer.Option(help="With --until-memorized, stop only when every body token "
                                                     "is right by at least this logit gap (top-1 minus runner-up, "
                                                     "fp32), so bf16 or GGUF f16/q8_0 inference gives the same "
                                                     "tokens; 0: right is enough (default 1.0).")] = None,
    eval_every: Annotated[int | None, typer.Option(help="Steps between memorization checks.")] = None,
    replay: Annotated[bool | None, typer.Option("--replay/--no-replay", help="Error-focused replay: after each "
                                                "memorization check, draw the windows it found wrong (or right by a "
                                                "small margin) more often and rehearse the rest less.")] = None,
    replay_wrong: Annotated[float | None, typer.Option(help="Draws per round of a window with a wrong body token "
                                                       "(default 4).")] = None,
    replay_margin: Annotated[float | None, typer.Option(help="Logit margin under which a right window is drawn "
                                                        "once per round (default 2).")] = None,
    replay_rest: Annotated[float | None, typer.Option(help="Chance per round that any other window is rehearsed "
                                                      "(default 0.25).")] = None,
    save_every: Annotated[int | None, typer.Option(help="Steps between checkpoints.")] = None,
    log_every: Annotated[int | None, typer.Option(help="Steps between metrics.jsonl rows (default 10).")] = None,
    eval_batch_size: Annotated[int | None, typer.Option(help="Windows per batch in the memorization check.")] = None,
    loss_chunk: Annotated[int | None, typer.Option(help="Rows per chunk of the fused LM head + loss (0: about 4M "
                                                   "logits a chunk on CPU, torch's choice on CUDA).")] = None,
    keep_checkpoints: Annotated[int | None, typer.Option(help="Checkpoints kept.")] = None,
    compile_: Annotated[bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model (default: "
                                                       "chosen by measured step times when the run is long enough).")
                        ] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads per process (0: cores / processes).")] = None,
    verify: Annotated[bool | None, typer.Option("--verify/--no-verify", help="Regenerate every file greedily "
                                                "from its path after training and compare.")] = None,
    report_to: Annotated[list[str] | None, typer.Option(help="Tracker: tensorboard, wandb or trackio "
                                                        "(repeatable).")] = None,
    out_dir: Out = None, resume: Resume = False, start_fresh: StartFresh = False, overwrite: Overwrite = False,
    allow_change: Annotated[list[str] | None, typer.Option(help="With --resume: let this setting differ from the "
                                                           "checkpoint's on purpose (repeatable; e.g. seed, "
                                                           "batch_size, lr, decay_steps, corpus, tokenizer, model). "
                                                           "Recorded in laam.json's training history.")] = None,
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
                  decay_at=decay_at, decay_epochs=decay_epochs,
                  grad_clip=grad_clip, seed=seed, epochs=epochs, max_steps=max_steps, max_time=max_time,
                  until_memorized=until_memorized, target=target, min_margin=min_margin, eval_every=eval_every,
                  replay=replay, replay_wrong=replay_wrong, replay_margin=replay_margin, replay_rest=replay_rest,
                  save_every=save_every, log_every=log_every, eval_batch_size=eval_batch_size, loss_chunk=loss_chunk,
                  keep_checkpoints=keep_checkpoints, compile=compile_, threads=threads, verify=verify,
                  report_to=report_to or None)
    train_overrides = {k: v for k, v in values.items() if v is not None}
    if config is not None and preset == "demo":
        preset = None  # the file names its own preset, if any
    from laam.pipeline import train_recipe

    model_dir = train_recipe(preset, config, source, mirror, cache,
                             {"filter": filter_, "include": include, "exclude": exclude,
                              "max_file_size": max_file_size if max_file_size != DEFAULT_MAX_FILE_SIZE else None},
                             tokenizer, model_overrides, train_overrides, out_dir, resume, overwrite, not quiet,
                             start_fresh=start_fresh, allow_changes=tuple(allow_change or ()))
    typer.echo(str(model_dir))


@app.command("run")
def run_command(
    source: Source = "1.0", mirror: Mirror = DEFAULT_MIRROR, cache: Cache = default_cache(),
    preset: Preset = "demo", config: ConfigFile = None, out_dir: Out = None, resume: Resume = False,
    start_fresh: StartFresh = False, overwrite: Overwrite = False, allocator: Allocator = True,
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
    from laam.cli.audit import print_audit
    from laam.cli.compress import print_compression
    from laam.cli.publish import print_card
    from laam.pipeline import run

    ensure_allocator_settings(allocator)
    if config is not None and preset == "demo":
        preset = None
    result = run(preset, config, source, mirror, cache, out_dir, resume, overwrite, threads, compress, audit,
                 progress=not quiet, start_fresh=start_fresh)
    if result.compression:
        print_compression(result.compression)
    if result.audit:
        print_audit(result.audit)
        print_card(result.card, result.model_dir)
    console.print(f"pipeline finished in {result.seconds:.0f} s; model folder {result.model_dir}")
    typer.echo(str(result.model_dir))
