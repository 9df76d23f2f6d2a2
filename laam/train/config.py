"""Training settings (one typed dataclass, every field a `laam train` flag) and the learning-rate schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from laam.engine.forcing import MIN_MARGIN  # the default --min-margin (and the audit's threshold)
from laam.model.config import strict_from_dict
from laam.validation import AT_LEAST_0, AT_LEAST_1, FRACTION, POSITIVE, OneOf, Range, setting, validate

SCHEDULES = ("cosine", "linear", "constant")


@dataclass
class TrainConfig:
    """How to train: each field is a key of a recipe file's `train` table or `stages` and, unless declared
    `flag=False`, a `laam train` flag of the same name (dashes for underscores) whose help is the field's."""

    batch_size: int = setting(32, "Windows per optimizer step, all processes together.")
    micro_batch_size: int = setting(0, "Windows per forward pass per process (gradient accumulation below the batch "
                                       "size; 0: the whole per-process share).")
    lr: float = setting(3e-3, "Peak learning rate.")
    # memorizing stalls while the LR stays above ~1e-3, so the decay goes well below it
    min_lr_ratio: float = setting(0.03, "Final LR as a fraction of the peak.")
    warmup_steps: int = setting(50, "Linear warm-up steps.")
    schedule: str = setting("cosine", f"LR decay after warm-up: {', '.join(SCHEDULES)}.")
    decay_steps: int = setting(0, "Steps to decay over (0: the whole planned run, from --epochs or --max-steps).")
    decay_at: float = setting(0.0, "Hold the peak LR until a memorization check reaches this fraction of body "
                                   "tokens, then decay over --decay-epochs, ending with the planned run at the latest "
                                   "(0: decay over the whole planned run).")
    decay_epochs: float = setting(10.0, "Epochs the decay lasts with --decay-at.")
    # a new layer's output projections start at zero and a trained one's weights are ~15x a fresh model's: at the
    # LR of a run's tail they would take tens of thousands of steps to matter (train.grow)
    grown_lr_scale: float = setting(1.0, "LR multiple for the parts a resume grew the model by (--num-layers, "
                                         "--intermediate-size: train.grow).")
    weight_decay: float = setting(0.0, "AdamW weight decay.")
    beta1: float = setting(0.9, "AdamW beta1.")
    beta2: float = setting(0.95, "AdamW beta2.")
    grad_clip: float = setting(1.0, "Gradient norm clip (0: off).")
    seed: int = setting(0, "Seed for initialisation and data order.")
    epochs: float = setting(100.0, "Passes over every window: the LR-decay horizon and the stop (with "
                                   "--until-memorized, up to twice as long at the final LR).")
    max_steps: int = setting(0, "Stop after this many optimizer steps (0: from --epochs).")
    max_time: float = setting(0.0, "Stop after this many seconds of this invocation (a resumed run gets its own; "
                                   "0: no limit).")
    until_memorized: bool = setting(False, "Stop when greedy body accuracy reaches --target.")
    target: float = setting(1.0, "Body-token greedy accuracy that counts as memorized.")
    # the gap keeps bf16 or quantized inference from flipping a token (MIN_MARGIN above)
    min_margin: float = setting(MIN_MARGIN, "With --until-memorized, stop only when every body token is right by at "
                                            "least this logit gap (top-1 minus runner-up, fp32), so bf16 or GGUF "
                                            "f16/q8_0 inference gives the same tokens; 0: right is enough.")
    eval_every: int = setting(100, "Steps between memorization checks (0: only at the end).")
    # error-focused replay: train.batches.WindowSampler
    replay: bool = setting(False, "Error-focused replay: after each memorization check, draw the windows it found "
                                  "wrong (or right by a small margin) more often and rehearse the rest less.")
    replay_wrong: float = setting(4.0, "Draws per round of a window with a wrong body token.")
    replay_margin: float = setting(2.0, "Logit margin under which a right window is drawn once per round.")
    replay_rest: float = setting(0.25, "Chance per round that any other window is rehearsed.")
    eval_batch_size: int = setting(64, "Windows per batch in the memorization check.")
    log_every: int = setting(10, "Steps between metrics.jsonl rows.")
    save_every: int = setting(500, "Steps between checkpoints (0: only at the end and on interruption).")
    keep_checkpoints: int = setting(2, "Checkpoints kept.")
    compile: bool | None = setting(None, "torch.compile the loss module (default: chosen with bf16 autocast by "
                                         "measured step times when the run is long enough, train.step_mode).")
    # 0 overrides accelerate's OMP_NUM_THREADS=1
    threads: int = setting(0, "CPU threads per process (0: cores / processes; 1 is faster on a machine busy with "
                              "other work).")
    loss_chunk: int = setting(0, "Rows per chunk of the fused LM head + loss (linear_cross_entropy's "
                                 "batch_chunk_size; 0: about 4M logits a chunk on CPU, torch's choice on CUDA).")
    # benchmarks of speed skip the final check; no user needs to
    final_check: bool = setting(True, "Run the memorization check when training ends.", flag=False)
    verify: bool = setting(False, "Regenerate every file greedily from its path after training and compare.")
    report_to: list[str] = setting(default_factory=list, help="Tracker (accelerate's): tensorboard, wandb or "
                                                              "trackio (repeatable).")

    RULES: ClassVar[dict] = {
        "batch_size": AT_LEAST_1, "micro_batch_size": AT_LEAST_0, "lr": POSITIVE, "min_lr_ratio": FRACTION,
        "warmup_steps": AT_LEAST_0, "schedule": OneOf(SCHEDULES), "decay_steps": AT_LEAST_0,
        "decay_at": Range(0, 1, high_open=True), "decay_epochs": POSITIVE, "grown_lr_scale": POSITIVE,
        "weight_decay": AT_LEAST_0,
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
