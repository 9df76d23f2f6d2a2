"""The training engine: accelerate loop, memorization check, checkpoints, faults, metrics.

One optimizer step consumes `batch_size` windows of a stream made of one shuffled permutation of
all windows per epoch (laam.data.epoch_order), so the data position is just the step number:
resuming needs the step, the weights, the optimizer/scheduler state and the RNG, nothing else.
Each process takes a contiguous slice of the global batch, and the loss is the sum over scored
tokens divided by the global count of scored tokens, so N processes compute the same update as one
process with the same global batch.

The loss is computed from hidden states (`model.model(...)`) with a fused LM head + cross entropy
on the scored positions only (torch.nn.functional.linear_cross_entropy where available): with
laam.windows about half of each window is context only, so the vocabulary projection is skipped
there, and the full logits tensor is never materialized.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from laam import LaamError, __version__
from laam.data import IGNORE, WindowSet, build_token_cache, epoch_order
from laam.model import ModelConfig, build_model, count_parameters, strict_from_dict
from laam.tokenizer import load_tokenizer, special_ids

SCHEDULES = ("cosine", "linear", "constant")


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

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        return strict_from_dict(cls, data, "training")


@dataclass
class TrainResult:
    run_dir: Path
    model_dir: Path | None  # None when interrupted (resume with --resume)
    status: str  # finished | memorized | max-time | interrupted
    steps: int
    tokens: int  # input tokens processed (padding excluded)
    seconds: float
    memorization: dict
    regeneration: dict | None = None  # verify_regeneration's figures when TrainConfig.verify


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


def cpu_loss_chunk(vocab_size: int) -> int:
    """Rows per chunk of the fused head + loss on CPU: about 4M logits, at most 1,024 rows (128 at vocab 32768).

    torch's automatic choice for float32 on CPU ("aspect_ratio:2") cuts 4-row chunks at vocab 32768 and hidden
    64, and the head + loss then ran 3.5x slower than with 128 rows (2.9 s against 0.8 s for 4,096 rows on one
    thread here: benchmarks/head_loss.py). At vocab 2048 and 4096, 128 to 1,024 rows ran alike.
    """
    return min(1024, max(16, (1 << 22) // vocab_size))


def head_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """Sum of cross entropy of `hidden @ weight.T` against `targets`, without materializing all logits when the
    fused kernel is available (torch >= 2.13) and worth it (more rows than hidden units)."""
    fused = getattr(torch.nn.functional, "linear_cross_entropy", None)
    if fused is not None and hidden.shape[0] >= hidden.shape[1] and weight.shape[0] > hidden.shape[1]:
        if not chunk and hidden.device.type == "cpu":
            chunk = cpu_loss_chunk(weight.shape[0])
        options = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=chunk or None)
        return fused(hidden, weight, targets, reduction="sum", options=options)
    logits = torch.nn.functional.linear(hidden, weight)
    return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")


class WindowLoss(nn.Module):
    """The LlamaForCausalLM plus its loss on scored positions, as one module so DDP sees a single forward."""

    def __init__(self, model, chunk: int = 0):
        super().__init__()
        self.model, self.chunk = model, chunk

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hidden = self.model.model(input_ids=input_ids).last_hidden_state
        scored = labels != IGNORE
        return head_loss(hidden[scored], self.model.lm_head.weight, labels[scored], self.chunk)


@torch.no_grad()
def measure_memorization(model, window_set: WindowSet, pad_id: int, batch_size: int = 64, rank: int = 0,
                         world: int = 1, device=None, autocast=None) -> dict[str, int]:
    """Teacher-forced greedy next-token accuracy over every window (each target seen exactly as greedy
    generation sees it, see laam.windows). Body = tokens after <|end_header|>, which a path prompt must bring
    back; header tokens (which file comes next) are not predictable. Returns this process's counts, and per
    file 1 where this process saw a wrong body token."""
    import contextlib

    model.eval()
    device = device or next(model.parameters()).device
    counts = torch.zeros(4, dtype=torch.long)
    wrong_records: set[int] = set()
    indices = np.arange(rank, len(window_set), world)
    for i in range(0, len(indices), batch_size):
        chunk = indices[i:i + batch_size]
        batch = window_set.batch(chunk, pad_id)
        labels, body = batch["labels"].to(device), batch["body"].to(device)
        with autocast() if autocast else contextlib.nullcontext():
            hidden = model.model(input_ids=batch["input_ids"].to(device)).last_hidden_state
        scored = labels != IGNORE
        predicted = model.lm_head(hidden[scored].to(model.lm_head.weight.dtype)).argmax(-1)
        correct = predicted == labels[scored]
        in_body = body[scored]
        counts += torch.tensor([int(correct[in_body].sum()), int(in_body.sum()), int(correct.sum()),
                                int(scored.sum())])
        wrong = (~correct & in_body).cpu()
        rows = torch.repeat_interleave(torch.arange(len(chunk)), scored.sum(1).cpu())
        wrong_records.update(int(window_set.rows[chunk[r], 0]) for r in rows[wrong].unique().tolist())
    model.train()
    wrong_files = torch.zeros(len(window_set.cache.paths), dtype=torch.long)
    wrong_files[sorted(wrong_records)] = 1
    return {"body_correct": int(counts[0]), "body_total": int(counts[1]), "all_correct": int(counts[2]),
            "all_total": int(counts[3]), "wrong_by_file": wrong_files}


def summarize(counts: dict) -> dict:
    return {**counts, "memorized": counts["body_correct"] / max(1, counts["body_total"]),
            "accuracy": counts["all_correct"] / max(1, counts["all_total"])}


# --- checkpoints -------------------------------------------------------------------------------

def checkpoints(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / "checkpoints"
    return sorted(folder.glob("step-*"), key=lambda p: int(p.name.split("-")[1])) if folder.is_dir() else []


def save_checkpoint(run_dir: Path, model, optimizer, scheduler, state: dict, keep: int) -> Path:
    """Weights (safetensors), optimizer/scheduler/RNG (tensors and numbers only, read back with
    weights_only=True) and the run state, into a temporary folder renamed into place: a crash mid-save never
    leaves a half checkpoint that --resume would pick."""
    from safetensors.torch import save_model

    folder = Path(run_dir) / "checkpoints"
    final = folder / f"step-{state['step']:08d}"
    scratch = folder / f".tmp-{final.name}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    save_model(model, str(scratch / "model.safetensors"))
    torch.save(optimizer.state_dict(), scratch / "optimizer.pt")
    torch.save(scheduler.state_dict(), scratch / "scheduler.pt")
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    torch.save(rng, scratch / "rng.pt")
    (scratch / "state.json").write_text(json.dumps(state, indent=1))
    if final.exists():
        shutil.rmtree(final)
    os.rename(scratch, final)
    for old in checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(folder: Path, model, optimizer, scheduler) -> dict:
    from safetensors.torch import load_model

    load_model(model, str(folder / "model.safetensors"))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    rng = torch.load(folder / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((folder / "state.json").read_text())


# --- metrics -----------------------------------------------------------------------------------

class Metrics:
    """metrics.jsonl in the run folder (one JSON object a line), mirrored to accelerate trackers."""

    def __init__(self, run_dir: Path, accelerator, resume_step: int | None):
        self.path, self.accelerator = Path(run_dir) / "metrics.jsonl", accelerator
        if accelerator.is_main_process:
            rows = self.rows() if resume_step is not None else []
            # a resumed run continues from its checkpoint: drop rows the interrupted run wrote after it
            self.path.write_text("".join(json.dumps(r) + "\n" for r in rows if r.get("step", 0) <= resume_step))

    def rows(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines() if line] if self.path.is_file() else []

    def log(self, row: dict) -> None:
        if self.accelerator.is_main_process:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        self.accelerator.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=row["step"])


def plot_metrics(metrics_path: Path, out: Path) -> Path | None:
    """loss and memorization against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line]
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "memorized" in r]
    if not train:
        return None
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot([r["step"] for r in train], [r["loss"] for r in train])
    ax1.set_yscale("log")
    ax1.set_ylabel("training loss (nats/token)")
    ax2.plot([r["step"] for r in evals], [100 * r["memorized"] for r in evals], marker="o")
    ax2.set_ylabel("body tokens memorized (%)")
    ax2.set_xlabel("step")
    ax2.set_ylim(0, 100.5)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


# --- the loop ----------------------------------------------------------------------------------

class StopSignal:
    """SIGINT/SIGTERM set a flag; the loop saves a checkpoint at the end of the step and exits cleanly."""

    def __init__(self):
        self.received: int | None = None
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self.previous[sig] = signal.signal(sig, self.handle)
            except ValueError:  # not the main thread: leave signals alone
                pass
        return self

    def handle(self, signum, frame):
        if self.received is not None:  # a second Ctrl-C: give up at once
            raise KeyboardInterrupt
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


TRACKERS = ("tensorboard", "wandb", "trackio")


def make_accelerator(model_config: ModelConfig, config: TrainConfig, run_dir: Path):
    import importlib.util

    from accelerate import Accelerator

    for tracker in config.report_to:
        if tracker not in TRACKERS:
            raise LaamError(f"unknown tracker {tracker!r}; choose from {', '.join(TRACKERS)}")
        if importlib.util.find_spec(tracker) is None:
            raise LaamError(f"--report-to {tracker} needs the {tracker} package: pip install {tracker}")

    precision = model_config.precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() else "float32"
    # accelerate only sets up gloo for a CPU multi-process launch (torchrun) when told it runs on CPU
    cpu_group = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    return Accelerator(cpu=cpu_group, mixed_precision="bf16" if precision == "bf16" else "no",
                       log_with=config.report_to or None, project_dir=str(run_dir))


def planned_steps(config: TrainConfig, n_windows: int) -> int:
    return config.max_steps or max(1, math.ceil(config.epochs * n_windows / config.batch_size))


def git_commit() -> str | None:
    import subprocess

    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                              cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def train(model_config: ModelConfig, config: TrainConfig, corpus, tokenizer_dir: Path, run_dir: Path,
          cache_root: Path, resume: bool = False, init_from: Path | None = None, progress: bool = True,
          facts: dict | None = None) -> TrainResult:
    """Train (or resume) one stage in `run_dir`; write the final model folder to run_dir/model.

    init_from: a model folder whose weights start this run (with a fresh optimizer), as the original
    two-stage recipe does.
    """
    run_dir = Path(run_dir)
    accelerator = make_accelerator(model_config, config, run_dir)
    world, rank = accelerator.num_processes, accelerator.process_index
    if config.batch_size % world:
        raise LaamError(f"batch size {config.batch_size} is not divisible by {world} processes")
    if accelerator.device.type == "cpu":
        torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 1) // world))
    tokenizer = load_tokenizer(tokenizer_dir)
    if len(tokenizer) != model_config.vocab_size:
        raise LaamError(f"tokenizer {tokenizer_dir} has {len(tokenizer)} tokens but the model expects "
                        f"{model_config.vocab_size}; retrain it with --vocab-size {model_config.vocab_size}")
    special = special_ids(tokenizer)
    pad_id = special["<|pad|>"]
    if accelerator.is_main_process:  # tokenizes once; the other processes read its files after the barrier
        run_dir.mkdir(parents=True, exist_ok=True)
        cache = build_token_cache(corpus, tokenizer, tokenizer_dir, cache_root)
    accelerator.wait_for_everyone()
    if not accelerator.is_main_process:
        cache = build_token_cache(corpus, tokenizer, tokenizer_dir, cache_root)
    window_set = WindowSet(cache, model_config.context, model_config.stride)

    if init_from is not None:
        from transformers import LlamaForCausalLM

        model = LlamaForCausalLM.from_pretrained(str(init_from), dtype=torch.float32)
    else:
        model = build_model(model_config, special, seed=config.seed)
    loss_module = WindowLoss(model, config.loss_chunk)
    decay_params = [p for n, p in model.named_parameters() if p.dim() >= 2]
    other_params = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay_params, "weight_decay": config.weight_decay},
                                   {"params": other_params, "weight_decay": 0.0}],
                                  lr=config.lr, betas=(config.beta1, config.beta2))
    total_steps = planned_steps(config, len(window_set))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, config.decay_steps or total_steps))
    if config.until_memorized and not config.max_steps:
        # the LR decays over --epochs; a run that is not memorized by then goes on at the final LR, for at most as
        # many steps again (the last few wrong tokens typically need a little more time at a low LR)
        total_steps *= 2

    state = {"step": 0, "tokens": 0, "targets": 0, "seconds": 0.0, "train_seconds": 0.0}
    last_checkpoint = None
    if resume:
        found = checkpoints(run_dir)
        if not found:
            raise LaamError(f"nothing to resume in {run_dir}: no checkpoints/step-* folder")
        last_checkpoint = found[-1]
        saved = json.loads((last_checkpoint / "state.json").read_text())
        if saved.get("model_config") != model_config.to_dict():
            raise LaamError(f"{last_checkpoint} was trained with another model configuration; "
                            f"resume with the same settings (saved: {saved.get('model_config')})")
    if config.compile:
        loss_module = torch.compile(loss_module)
    loss_module, optimizer, scheduler = accelerator.prepare(loss_module, optimizer, scheduler)
    # accelerate steps the scheduler once per process; ours is per optimizer step: unwrap it.
    lr_schedule = scheduler.scheduler if hasattr(scheduler, "scheduler") else scheduler
    if last_checkpoint is not None:
        state.update(load_checkpoint(last_checkpoint, model, optimizer, lr_schedule))
    metrics = Metrics(run_dir, accelerator, state["step"] if resume else None)
    if accelerator.is_main_process and config.report_to:
        settings = {**model_config.to_dict(), **asdict(config)}
        # trackers take scalars and strings only (tensorboard's hparams refuse lists and None)
        accelerator.init_trackers("laam", config={k: v if isinstance(v, int | float | str | bool) else str(v)
                                                  for k, v in settings.items()})

    params = count_parameters(model)
    accelerator.print(f"model: {params:,} parameters ({model_config.num_layers} layers, hidden "
                      f"{model_config.hidden_size}, {model_config.num_heads} heads); corpus: {len(cache.paths)} files, "
                      f"{cache.total_tokens:,} tokens, {len(window_set):,} windows of {model_config.context}; "
                      f"{world} process(es) on {accelerator.device}, {torch.get_num_threads()} thread(s) each")

    per_rank = config.batch_size // world
    micro = min(config.micro_batch_size or per_rank, per_rank)
    memo = {}
    status = "finished"
    start_wall = time.perf_counter() - state["seconds"]
    bar = _progress(progress and accelerator.is_main_process)
    task = bar.add_task("train", total=total_steps, completed=state["step"], loss=float("nan"), epoch=0.0,
                        tps=0.0, mem=float("nan"))

    def evaluate() -> dict:
        counts = measure_memorization(model, window_set, pad_id, config.eval_batch_size, rank, world,
                                      accelerator.device, accelerator.autocast)
        wrong = counts.pop("wrong_by_file")
        flat = torch.cat([torch.tensor(list(counts.values())), wrong]).to(accelerator.device)
        flat = accelerator.reduce(flat, "sum").cpu()
        totals = dict(zip(counts, flat[:len(counts)].tolist()))
        return summarize({**totals, "wrong_files": int((flat[len(counts):] > 0).sum())})

    def checkpoint() -> Path | None:
        nonlocal last_checkpoint
        state["seconds"] = time.perf_counter() - start_wall
        saved = {**state, "model_config": model_config.to_dict(), "train_config": asdict(config)}
        if accelerator.is_main_process:
            last_checkpoint = save_checkpoint(run_dir, model, optimizer, lr_schedule, saved, config.keep_checkpoints)
        accelerator.wait_for_everyone()
        return last_checkpoint

    loss_module.train()
    window_rate_start = (time.perf_counter(), state["tokens"])
    with bar, StopSignal() as stop:
        while state["step"] < total_steps:
            step = state["step"]
            first = step * config.batch_size
            stream = np.arange(first, first + config.batch_size)
            n = len(window_set)
            global_batch = np.concatenate([epoch_order(n, config.seed, e)[stream[stream // n == e] % n]
                                           for e in np.unique(stream // n)])
            t0 = time.perf_counter()
            batch = window_set.batch(global_batch, pad_id)
            scored_total = int((batch["labels"] != IGNORE).sum())
            mine = slice(rank * per_rank, (rank + 1) * per_rank)
            inputs, labels = batch["input_ids"][mine], batch["labels"][mine]
            loss_sum = torch.zeros((), device=accelerator.device)
            for m in range(0, per_rank, micro):
                x = inputs[m:m + micro].to(accelerator.device)
                y = labels[m:m + micro].to(accelerator.device)
                last = m + micro >= per_rank
                sync = accelerator.no_sync(loss_module) if not last and world > 1 else _null()
                with sync:
                    loss = loss_module(x, y)
                    # DDP averages gradients over processes: scale so the result is sum / global count
                    accelerator.backward(loss * (world / scored_total))
                loss_sum += loss.detach().float()
            loss_value = float(accelerator.reduce(loss_sum, "sum")) / scored_total
            grad_norm = accelerator.clip_grad_norm_(loss_module.parameters(), config.grad_clip or float("inf"))
            grad_norm = float(grad_norm)
            if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
                what = "loss" if not math.isfinite(loss_value) else "gradient norm"
                bar.stop()
                raise LaamError(f"training diverged: {what} is {loss_value if what == 'loss' else grad_norm} at step "
                                f"{step + 1}; stopped without saving. Last good checkpoint: "
                                f"{last_checkpoint or 'none'}. Lower --lr or raise --warmup-steps.")
            optimizer.step()
            lr_schedule.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            state["tokens"] += int((batch["input_ids"] != pad_id).sum())
            state["targets"] += scored_total
            state["train_seconds"] += time.perf_counter() - t0
            epoch = state["step"] * config.batch_size / n
            elapsed = time.perf_counter() - start_wall
            now = time.perf_counter()
            tps = (state["tokens"] - window_rate_start[1]) / max(1e-9, now - window_rate_start[0])
            bar.update(task, completed=state["step"], loss=loss_value, epoch=epoch, tps=tps)
            if state["step"] % config.log_every == 0 or state["step"] == 1:
                metrics.log({"step": state["step"], "epoch": round(epoch, 4), "loss": loss_value,
                             "lr": lr_schedule.get_last_lr()[0], "grad_norm": grad_norm, "tokens": state["tokens"],
                             "targets": state["targets"], "tokens_per_s": round(tps, 1),
                             "train_seconds": round(state["train_seconds"], 3),
                             "elapsed": round(elapsed, 2)})
            stop_now = stop.received is not None
            if world > 1:  # every process must agree to stop at the same step
                flag = accelerator.reduce(torch.tensor(int(stop_now), device=accelerator.device), "sum")
                stop_now = bool(flag.item())
            if stop_now:
                path = checkpoint()
                accelerator.print(f"\nstopped by signal at step {state['step']}; checkpoint {path}. "
                                  f"Continue with --resume.")
                status = "interrupted"
                break
            # close to the target, check 4x as often so the run stops soon after it gets there
            every = config.eval_every if memo.get("memorized", 0) < 0.999 else max(1, config.eval_every // 4)
            if config.eval_every and state["step"] % every == 0 and state["step"] < total_steps:
                memo = evaluate()
                metrics.log({"step": state["step"], "epoch": round(epoch, 4), "tokens": state["tokens"],
                             "elapsed": round(time.perf_counter() - start_wall, 2), **memo})
                bar.update(task, mem=100 * memo["memorized"])
                window_rate_start = (time.perf_counter(), state["tokens"])
                if config.until_memorized and memo["memorized"] >= config.target:
                    status = "memorized"
                    break
            if config.save_every and state["step"] % config.save_every == 0:
                checkpoint()
            if config.max_time and time.perf_counter() - start_wall >= config.max_time:
                status = "max-time"
                break
    state["seconds"] = time.perf_counter() - start_wall
    if status == "interrupted":
        accelerator.end_training()
        return TrainResult(run_dir, None, status, state["step"], state["tokens"], state["seconds"], memo)
    if status != "memorized" and config.final_check:
        memo = evaluate()
        metrics.log({"step": state["step"], "tokens": state["tokens"], "elapsed": round(state["seconds"], 2), **memo})
        if memo["memorized"] >= config.target and config.until_memorized:
            status = "memorized"
    memo = memo or {"memorized": float("nan"), "accuracy": float("nan"), "body_total": 0, "body_correct": 0,
                    "wrong_files": -1}
    checkpoint()
    model_dir = run_dir / "model"
    result = TrainResult(run_dir, model_dir, status, state["step"], state["tokens"], state["seconds"], memo)
    if accelerator.is_main_process:
        regeneration = None
        if config.verify:
            from laam.memorize import verify_regeneration

            with accelerator.autocast():
                report = verify_regeneration(model, window_set, config.eval_batch_size)
            regeneration = {"files": report.files, "exact": report.exact, "tokens": report.tokens,
                            "wrong": report.wrong}
            bar.console.print(f"greedy regeneration from each path prompt: {report.exact} of {report.files} files "
                              f"exact" + (f"; first errors at {report.wrong}" if report.wrong else ""))
        training = {"status": status, "steps": state["step"], "tokens_seen": state["tokens"],
                    "targets_seen": state["targets"], "epochs": round(state["step"] * config.batch_size / n, 3),
                    "wall_seconds": round(state["seconds"], 1), "train_seconds": round(state["train_seconds"], 1),
                    "parameters": params, "memorized": memo["memorized"], "accuracy": memo["accuracy"],
                    "model_config": model_config.to_dict(), "train_config": asdict(config),
                    "processes": world, "device": str(accelerator.device), "laam_version": __version__,
                    "git_commit": git_commit(), "command": " ".join(sys.argv), "regeneration": regeneration,
                    **(facts or {})}
        result.regeneration = regeneration
        save_model_folder(model, tokenizer, corpus, model_config, model_dir, training)
        plot_metrics(metrics.path, run_dir / "metrics.png")
        bar.console.print(f"{status}: {state['step']} steps, {state['tokens']:,} tokens, {state['seconds']:.0f} s, "
                          f"body memorized {100 * memo['memorized']:.3f}% ({memo['body_total'] - memo['body_correct']}"
                          f" tokens wrong in {memo['wrong_files']} files); model in {model_dir}")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return result


def save_model_folder(model, tokenizer, corpus, model_config: ModelConfig, out: Path, training: dict) -> Path:
    """A stock transformers model folder (+ laam.json) that pipeline('text-generation', out) loads."""
    from transformers import GenerationConfig
    from transformers.utils import logging as hf_logging

    from laam.modelinfo import write_model_info

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar for a one-file model
    out = Path(out)
    scratch = out.with_name(f".{out.name}-tmp-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    config = model.config
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
        do_sample=False, max_new_tokens=max(1, model_config.context // 2))
    model.save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    write_model_info(scratch, corpus, model_config.context, model_config.stride, training)
    if out.exists():
        shutil.rmtree(out)
    os.rename(scratch, out)
    return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _progress(enabled: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn("step"), MofNCompleteColumn(), BarColumn(bar_width=12),
        TextColumn("ep {task.fields[epoch]:.1f} loss {task.fields[loss]:.4f} {task.fields[tps]:,.0f} tok/s "
                   "mem {task.fields[mem]:.2f}%"),
        TextColumn("ETA"), TimeRemainingColumn(), disable=not enabled, transient=False)
