"""Training settings (one typed dataclass, every field a `laam train` flag) and the learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from laam.model.config import strict_from_dict
from laam.validation import AT_LEAST_0, AT_LEAST_1, FRACTION, POSITIVE, OneOf, Range, validate

SCHEDULES = ("cosine", "linear", "constant")
# The default --min-margin and the audit's safety threshold: a logit gap (fp32). Measured (benchmark margin_drift,
# benchmarks/results/margin_drift.json): bf16 (autocast or weights) and GGUF f16/q8_0 moved a body token's margin by
# at most 0.43 logits on tiny and demo models (five models: with and without --min-margin); this is 2.3x that.
MIN_MARGIN = 1.0


@dataclass
class TrainConfig:
    batch_size: int = 32  # windows per optimizer step, all processes together
    micro_batch_size: int = 0  # windows per forward pass per process; 0: the whole per-process share
    lr: float = 3e-3  # peak learning rate
    min_lr_ratio: float = 0.03  # final LR = lr * this (memorizing stalls while the LR stays above ~1e-3)
    warmup_steps: int = 50
    schedule: str = "cosine"  # cosine | linear | constant, after the warm-up
    decay_steps: int = 0  # steps over which the LR decays; 0: the whole planned run (epochs or max_steps)
    # hold the peak LR until a memorization check reaches decay_at of body tokens, then decay over decay_epochs
    # (at the latest so that the decay ends with the planned run); 0: decay over the whole planned run
    decay_at: float = 0.0
    decay_epochs: float = 10.0
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0: off
    seed: int = 0
    epochs: float = 100.0  # LR-decay horizon and stop; with until_memorized, up to 2x as long at the final LR
    max_steps: int = 0  # 0: from epochs
    max_time: float = 0.0  # seconds of wall time of this invocation (a resumed run gets its own); 0: no limit
    until_memorized: bool = False  # stop when the memorization check reaches `target`
    target: float = 1.0  # body-token greedy accuracy that counts as memorized
    # with until_memorized: stop only when body tokens are right by at least this logit gap (top-1 minus runner-up,
    # fp32), so bf16 or quantized inference cannot flip them; 0: right is enough
    min_margin: float = MIN_MARGIN
    eval_every: int = 100  # steps between memorization checks (0: only at the end)
    # error-focused replay (train.batches.WindowSampler): after each check, per round a window with a wrong body
    # token is drawn replay_wrong times, one right by a logit margin under replay_margin once, the others with
    # probability replay_rest
    replay: bool = False
    replay_wrong: float = 4.0
    replay_margin: float = 2.0
    replay_rest: float = 0.25
    eval_batch_size: int = 64
    log_every: int = 10
    save_every: int = 500  # steps between checkpoints (0: only at the end and on interruption)
    keep_checkpoints: int = 2
    # torch.compile the loss module; None: chosen with bf16 autocast from measured step times (train.step_mode)
    compile: bool | None = None
    threads: int = 0  # CPU threads per process; 0: all cores / processes (overrides accelerate's OMP_NUM_THREADS=1)
    loss_chunk: int = 0  # batch_chunk_size of linear_cross_entropy; 0: cpu_loss_chunk on CPU, torch's choice on CUDA
    final_check: bool = True  # run the memorization check when training ends (benchmarks of speed skip it)
    verify: bool = False  # after training, regenerate every file greedily and compare (verify_records)
    report_to: list[str] = field(default_factory=list)  # accelerate trackers: tensorboard, wandb, trackio

    RULES: ClassVar[dict] = {
        "batch_size": AT_LEAST_1, "micro_batch_size": AT_LEAST_0, "lr": POSITIVE, "min_lr_ratio": FRACTION,
        "warmup_steps": AT_LEAST_0, "schedule": OneOf(SCHEDULES), "decay_steps": AT_LEAST_0,
        "decay_at": Range(0, 1, high_open=True), "decay_epochs": POSITIVE, "weight_decay": AT_LEAST_0,
        "beta1": Range(0, 1, high_open=True), "beta2": Range(0, 1, high_open=True), "grad_clip": AT_LEAST_0,
        "seed": AT_LEAST_0, "epochs": POSITIVE, "max_steps": AT_LEAST_0, "max_time": AT_LEAST_0,
        "target": Range(0, 1, low_open=True), "min_margin": AT_LEAST_0, "eval_every": AT_LEAST_0,
        "replay_wrong": AT_LEAST_0, "replay_margin": AT_LEAST_0, "replay_rest": FRACTION,
        "eval_batch_size": AT_LEAST_1, "log_every": AT_LEAST_1, "save_every": AT_LEAST_0,
        "keep_checkpoints": AT_LEAST_1, "threads": AT_LEAST_0, "loss_chunk": AT_LEAST_0,
    }

    def __post_init__(self):
        validate(self, "training")

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return strict_from_dict(cls, data, "training")


def lr_lambda(config: TrainConfig, decay_steps: int, decay: DecayStart | None = None):
    """Linear warm-up, then cosine/linear decay to min_lr_ratio at decay_steps, flat after. With `decay` (the
    adaptive schedule, config.decay_at), the LR holds at the peak until decay.step, then decays over
    decay.length steps; before anything set decay.step, the decay is planned to end at decay_steps."""
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.schedule == "constant":
            return 1.0
        if decay is not None:
            begin = min(decay.step if decay.step is not None else decay_steps, decay_steps - decay.length)
            begin = max(begin, config.warmup_steps)
            progress = min(1.0, max(0, step - begin) / max(1, decay.length))
        else:
            progress = min(1.0, (step - config.warmup_steps) / max(1, decay_steps - config.warmup_steps))
        shape = 0.5 * (1 + math.cos(math.pi * progress)) if config.schedule == "cosine" else 1 - progress
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * shape
    return factor


@dataclass
class DecayStart:
    """When the adaptive schedule's decay begins (None: not yet) and how many steps it lasts; the trainer sets
    `step` at the first check that reaches config.decay_at, and a checkpoint carries it."""
    length: int
    step: int | None = None


def planned_steps(config: TrainConfig, n_windows: int) -> int:
    return config.max_steps or max(1, math.ceil(config.epochs * n_windows / config.batch_size))
