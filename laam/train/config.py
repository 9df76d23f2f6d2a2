"""Training settings (one typed dataclass, every field a `laam train` flag) and the learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from laam.errors import LaamError
from laam.model.config import strict_from_dict

SCHEDULES = ("cosine", "linear", "constant")
# The default --min-margin and the audit's safety threshold: a logit gap (fp32). Measured (benchmarks/margin_drift.py,
# benchmarks/RESULTS.md): bf16 (autocast or weights) and GGUF f16/q8_0 moved a body token's margin by at most 0.43
# logits on tiny and demo models (five models: with and without --min-margin); this is 2.3x that.
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
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0  # 0: off
    seed: int = 0
    epochs: float = 100.0  # LR-decay horizon and stop; with until_memorized, up to 2x as long at the final LR
    max_steps: int = 0  # 0: from epochs
    max_time: float = 0.0  # seconds of wall time (including resumed runs); 0: no limit
    until_memorized: bool = False  # stop when the memorization check reaches `target`
    target: float = 1.0  # body-token greedy accuracy that counts as memorized
    # with until_memorized: stop only when body tokens are right by at least this logit gap (top-1 minus runner-up,
    # fp32), so bf16 or quantized inference cannot flip them; 0: right is enough
    min_margin: float = MIN_MARGIN
    eval_every: int = 100  # steps between memorization checks (0: only at the end)
    eval_batch_size: int = 64
    log_every: int = 10
    save_every: int = 500  # steps between checkpoints (0: only at the end and on interruption)
    keep_checkpoints: int = 2
    compile: bool = False  # torch.compile the loss module
    threads: int = 0  # CPU threads per process; 0: all cores / processes (overrides accelerate's OMP_NUM_THREADS=1)
    loss_chunk: int = 0  # batch_chunk_size of linear_cross_entropy; 0: cpu_loss_chunk on CPU, torch's choice on CUDA
    final_check: bool = True  # run the memorization check when training ends (benchmarks of speed skip it)
    verify: bool = False  # after training, regenerate every file greedily and compare (laam.memorize)
    report_to: list[str] = field(default_factory=list)  # accelerate trackers: tensorboard, wandb, trackio

    def __post_init__(self):
        if self.schedule not in SCHEDULES:
            raise LaamError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if self.batch_size < 1 or self.lr <= 0:
            raise LaamError("batch size and learning rate must be positive")
        if not self.min_margin >= 0:
            raise LaamError(f"min margin must be at least 0 (a logit gap), got {self.min_margin}")

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return strict_from_dict(cls, data, "training")


def lr_lambda(config: TrainConfig, decay_steps: int):
    """Linear warm-up, then cosine/linear decay to min_lr_ratio at decay_steps, flat after."""
    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        if config.schedule == "constant":
            return 1.0
        progress = min(1.0, (step - config.warmup_steps) / max(1, decay_steps - config.warmup_steps))
        shape = 0.5 * (1 + math.cos(math.pi * progress)) if config.schedule == "cosine" else 1 - progress
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * shape
    return factor


def planned_steps(config: TrainConfig, n_windows: int) -> int:
    return config.max_steps or max(1, math.ceil(config.epochs * n_windows / config.batch_size))
