"""The training loop: accelerate, one optimizer step per batch of windows, checks, checkpoints, faults.

One optimizer step consumes `batch_size` windows chosen by train.batches.WindowSampler: one shuffled
permutation of all windows per epoch, or, with error-focused replay, rounds weighted by the last
memorization check. The data position is a pure function of the step and the sampler's state, so
resuming needs the step, the weights, the optimizer/scheduler/sampler state, the last check and the RNG.
Each process takes a contiguous slice of the global batch, and the loss is the sum over scored
tokens divided by the global count of scored tokens, so N processes compute the same update as one
process with the same global batch.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError

from laam import __version__
from laam.data.records import PAD
from laam.data.tokenizer import load_tokenizer, special_ids, tokenizer_sha256
from laam.data.tokens import build_token_cache, untrue_records
from laam.errors import LaamError
from laam.model.config import ModelConfig, build_model, count_parameters
from laam.model.folder import WEIGHTS_FILE, check_model_folder, save_model_folder, weights_fingerprint
from laam.progress import console, train_bar
from laam.provenance import cpu_description, git_commit
from laam.train.ambiguity import ambiguous_positions, describe
from laam.train.batches import IGNORE, WindowSampler, WindowSet
from laam.train.checkpoint import apply_schedule, load_checkpoint, read_state, save_checkpoint
from laam.train.claim import claimed_status
from laam.train.config import DecayStart, TrainConfig, lr_lambda, planned_steps
from laam.train.grow import GrownLR, Growth
from laam.train.loss import WindowLoss
from laam.train.memorization import NO_WRONG, measure_memorization, reached, summarize, verify_records
from laam.train.metrics import TRACKERS, Metrics, plot_metrics
from laam.train.optimizer import build_optimizer
from laam.train.resume import resume_from, run_identity
from laam.train.signals import StopSignal
from laam.train.step_mode import candidates, choose_step_mode, probe_step, worth_probing
from laam.train.threads import set_threads


@dataclass
class TrainResult:
    run_dir: Path
    model_dir: Path | None  # None when interrupted (resume with --resume)
    status: str  # finished | memorized | max-time | interrupted
    steps: int
    tokens: int  # input tokens processed (padding excluded)
    seconds: float
    memorization: dict
    regeneration: dict | None = None  # train.memorization.verify_records' figures when TrainConfig.verify


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


class Trainer:
    """One stage of training in one run folder: set up, (resume,) step until a stop, finish."""

    def __init__(self, model_config: ModelConfig, config: TrainConfig, corpus, tokenizer_dir: Path, run_dir: Path,
                 cache_root: Path, init_from: Path | None = None, progress: bool = True, facts: dict | None = None,
                 allow_changes: tuple[str, ...] = ()):
        self.model_config, self.config, self.corpus = model_config, config, corpus
        self.allow_changes = allow_changes
        self.run_dir, self.facts = Path(run_dir), facts or {}
        self.accelerator = accelerator = make_accelerator(model_config, config, self.run_dir)
        self.world, self.rank = accelerator.num_processes, accelerator.process_index
        if config.batch_size % self.world:
            raise LaamError(f"batch size {config.batch_size} is not divisible by {self.world} processes")
        self.tuner = set_threads(accelerator.device.type, config.threads, self.world)  # None: a fixed count
        self.tokenizer = load_tokenizer(tokenizer_dir)
        if len(self.tokenizer) != model_config.vocab_size:
            raise LaamError(f"tokenizer {tokenizer_dir} has {len(self.tokenizer)} tokens but the model expects "
                            f"{model_config.vocab_size}; retrain it with --vocab-size {model_config.vocab_size}")
        self.special = special = special_ids(self.tokenizer)
        self.pad_id = special[PAD]
        if accelerator.is_main_process:  # tokenizes once; the other processes read its files after the barrier
            self.run_dir.mkdir(parents=True, exist_ok=True)
            cache = build_token_cache(corpus, self.tokenizer, tokenizer_dir, cache_root)
        accelerator.wait_for_everyone()
        if not accelerator.is_main_process:
            cache = build_token_cache(corpus, self.tokenizer, tokenizer_dir, cache_root)
        self.window_set = WindowSet(cache, model_config.policy)
        self.sampler = WindowSampler(len(self.window_set), config.batch_size, config.seed, config.replay,
                                     config.replay_wrong, config.replay_margin, config.replay_rest)
        # positions whose context repeats elsewhere with another next token: no weights get them all right
        self.ambiguous = ambiguous_positions(cache, model_config.policy) if accelerator.is_main_process else []
        self.model = build_model(model_config, special, seed=config.seed)
        if init_from is not None:  # a previous stage's weights, with a fresh optimizer (the original's recipe)
            from safetensors.torch import load_model

            check_model_folder(init_from)  # safetensors only, a consistent folder
            load_model(self.model, str(Path(init_from) / WEIGHTS_FILE))
        self.loss_module = WindowLoss(self.model, config.loss_chunk)
        self.optimizer = build_optimizer(self.model, config)
        self.total_steps = planned_steps(config, len(self.window_set))
        decay_steps = config.decay_steps or self.total_steps
        self.decay = DecayStart(math.ceil(config.decay_epochs * len(self.window_set) / config.batch_size)) \
            if config.decay_at else None
        scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(config, decay_steps, self.decay))
        self.identity = run_identity(model_config, config, corpus.fingerprint(), tokenizer_sha256(tokenizer_dir),
                                     decay_steps, weights_fingerprint(init_from)[0] if init_from else None)
        if config.until_memorized and not config.max_steps:
            # the LR decays over --epochs; a run that is not memorized by then goes on at the final LR, for at most
            # as many steps again (the last few wrong tokens typically need a little more time at a low LR)
            self.total_steps *= 2
        # the step's mode: what the user fixed (--compile and --precision together), else measured in run() when
        # the run is long enough (train.step_mode), else the first candidate: eager, float32 unless asked for bf16
        self.mode = candidates(config.compile, model_config.precision, accelerator.device.type)[0]
        self.mode_times = {}
        if config.compile:
            self.loss_module = torch.compile(self.loss_module)
        self.loss_module, self.optimizer, scheduler = accelerator.prepare(self.loss_module, self.optimizer, scheduler)
        # accelerate steps the scheduler once per process; ours is per optimizer step: unwrap it.
        self.schedule = scheduler.scheduler if hasattr(scheduler, "scheduler") else scheduler
        self.state = {"step": 0, "tokens": 0, "targets": 0, "seconds": 0.0, "train_seconds": 0.0, "history": [],
                      "decay_start": None, "grown": []}
        self.grown_lr: GrownLR | None = None  # the parts a resume grew the model by, at --grown-lr-scale (train.grow)
        self.last_checkpoint: Path | None = None
        self.last_summary: dict = {}  # the summary of the last memorization check (scheduled or final)
        # the step of the last check, and per file it found a wrong body token in, that token's position
        self.last_wrong_files: dict = {}
        # the summary of the last scheduled check: it steers the sampler and the LR decay (a final check does not)
        self.steering_summary: dict = {}
        self.progress = progress and accelerator.is_main_process

    # --- resume -----------------------------------------------------------------------------------
    def resume(self) -> None:
        """Continue exactly from the run folder's newest good checkpoint, with the settings that made it
        (laam.train.resume: damaged checkpoints are set aside, other settings are an error naming them)."""
        main = self.accelerator.is_main_process

        def report(message: str) -> None:
            if main:
                console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

        growths = {}

        def load(folder: Path) -> dict:  # a model grown since the checkpoint starts as the same function
            growths[folder] = Growth.between(read_state(folder).get("identity"), self.model_config, self.special,
                                             self.config.seed)
            return load_checkpoint(folder, self.model, self.optimizer, self.schedule, self.sampler, growths[folder])

        self.last_checkpoint, state, changed = resume_from(self.run_dir, self.identity, self.model_config.to_dict(),
                                                           self.allow_changes, load, report, main)
        self.state.update({k: v for k, v in state.items() if k in self.state})
        grow = growths[self.last_checkpoint]
        if grow is not None:
            self.state["grown"] = grow.parts(grow.sources(self.model.state_dict()), self.state["grown"])
        if self.state["grown"] and self.config.grown_lr_scale != 1:
            self.grown_lr = GrownLR(self.model, self.state["grown"], self.config.grown_lr_scale)
        # the check schedule, the sampler and the LR schedule go on from the last scheduled check's result
        self.last_summary = self.steering_summary = state.get("check") or {}
        if self.decay is not None:
            self.decay.step = self.state["decay_start"]
            apply_schedule(self.optimizer, self.schedule)  # the schedule's LR now that it knows where decay began
        if changed:
            self.state["history"] = [*self.state["history"], {"step": self.state["step"], "changed": changed}]

    # --- the loop ---------------------------------------------------------------------------------
    def run(self, resumed: bool) -> TrainResult:
        config, accelerator = self.config, self.accelerator
        self.metrics = Metrics(self.run_dir, accelerator, self.state["step"] if resumed else None)
        if accelerator.is_main_process and config.report_to:
            settings = {**self.model_config.to_dict(), **asdict(config)}
            # trackers take scalars and strings only (tensorboard's hparams refuse lists and None)
            accelerator.init_trackers("laam", config={k: v if isinstance(v, int | float | str | bool) else str(v)
                                                      for k, v in settings.items()})
        self.parameters = count_parameters(self.model)
        self.choose_mode()
        cache = self.window_set.cache
        accelerator.print(
            f"model: {self.parameters:,} parameters ({self.model_config.num_layers} layers, hidden "
            f"{self.model_config.hidden_size}, {self.model_config.num_heads} heads); corpus: {len(cache.paths)} "
            f"files, {cache.total_tokens:,} tokens, {len(self.window_set):,} windows of {self.model_config.context}; "
            f"{self.world} process(es) on {accelerator.device}, {self.tuner or torch.get_num_threads()} thread(s) "
            f"each, {self.mode} steps" + (" (" + ", ".join(f"{m} {1e3 * t:.0f} ms" for m, t in self.mode_times.items())
                                    + " per step measured)" if self.mode_times else ""))
        self.started = time.perf_counter()  # --max-time counts this invocation's time
        # a run is trained in slices, possibly on different machines: each slice says where and what it ran on
        self.metrics.log({"step": self.state["step"], "event": "start", "tokens": self.state["tokens"],
                          "time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "resumed": resumed,
                          **cpu_description(), "device": str(accelerator.device), "processes": self.world,
                          "torch": torch.__version__, "laam_commit": git_commit(), "step_mode": str(self.mode),
                          "step_mode_seconds": {str(m): round(t, 5) for m, t in self.mode_times.items()},
                          "precision": self.model_config.precision})
        self.start_wall = self.started - self.state["seconds"]
        if self.ambiguous:
            accelerator.print(f"warning: {describe(self.ambiguous, self.model_config.policy)}")
        status = "finished"
        self.bar = train_bar(self.progress)
        task = self.bar.add_task("train", total=self.total_steps, completed=self.state["step"], loss=float("nan"),
                                 epoch=0.0, tps=0.0, mem=float("nan"))
        self.loss_module.train()
        rate_from = (time.perf_counter(), self.state["tokens"])
        with self.bar, StopSignal() as stop:
            while self.state["step"] < self.total_steps:
                loss, grad_norm = self.tuned_step()
                now = time.perf_counter()
                tps = (self.state["tokens"] - rate_from[1]) / max(1e-9, now - rate_from[0])
                self.bar.update(task, completed=self.state["step"], loss=loss, epoch=self.epoch, tps=tps)
                if self.state["step"] % config.log_every == 0 or self.state["step"] == 1:
                    self.metrics.log({"step": self.state["step"], "epoch": round(self.epoch, 4), "loss": loss,
                                      "lr": self.schedule.get_last_lr()[0], "grad_norm": grad_norm,
                                      "tokens": self.state["tokens"], "targets": self.state["targets"],
                                      "tokens_per_s": round(tps, 1), "threads": torch.get_num_threads(),
                                      "train_seconds": round(self.state["train_seconds"], 3),
                                      "elapsed": round(now - self.start_wall, 2)})
                if self.agree(stop.received is not None):
                    path = self.checkpoint()
                    accelerator.print(f"\nstopped by signal at step {self.state['step']}; checkpoint {path}. "
                                      "Continue with --resume.")
                    status = "interrupted"
                    break
                if self.check_due():
                    self.evaluate_and_log()
                    self.bar.update(task, mem=100 * self.last_summary["memorized"])
                    rate_from = (time.perf_counter(), self.state["tokens"])
                    if config.until_memorized and reached(self.last_summary, config.target):
                        status = "memorized"
                        break
                if config.save_every and self.state["step"] % config.save_every == 0:
                    self.checkpoint()
                if config.max_time and time.perf_counter() - self.started >= config.max_time:
                    status = "max-time"
                    break
        self.state["seconds"] = time.perf_counter() - self.start_wall
        self.metrics.log({"step": self.state["step"], "event": "stop", "status": status,
                          "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          "tokens": self.state["tokens"], "train_seconds": round(self.state["train_seconds"], 3),
                          "slice_seconds": round(time.perf_counter() - self.started, 3)})
        if status == "interrupted":
            accelerator.end_training()
            s = self.state
            return TrainResult(self.run_dir, None, status, s["step"], s["tokens"], s["seconds"], self.last_summary)
        return self.finish(status)

    def choose_mode(self) -> None:
        """Measure eager/compiled x float32/bf16 steps when the mode is left open and the run is long enough."""
        config, device_type = self.config, self.accelerator.device.type
        modes = candidates(config.compile, self.model_config.precision, device_type)
        if not worth_probing(modes, self.total_steps - self.state["step"], self.world):
            return
        size = min(config.batch_size, len(self.window_set))

        def batches(i: int):
            batch = self.window_set.batch(np.arange(i * size, (i + 1) * size) % len(self.window_set), self.pad_id)
            return (batch["input_ids"].to(self.accelerator.device), batch["labels"].to(self.accelerator.device))

        if self.progress:
            console.print(f"measuring training steps: {', '.join(map(str, modes))} (about a minute)",
                          highlight=False, soft_wrap=True)
        make_step = probe_step(self.model, lambda model: WindowLoss(model, config.loss_chunk), batches,
                               device_type, config.grad_clip)
        self.mode, self.mode_times = choose_step_mode(modes, make_step)
        if self.mode.compile:
            self.loss_module = torch.compile(self.loss_module)

    @property
    def epoch(self) -> float:
        return self.state["step"] * self.config.batch_size / len(self.window_set)

    def tuned_step(self) -> tuple[float, float]:
        """One step, at the thread count the tuner picks (train.threads) when the count is automatic."""
        if self.tuner is None:
            return self.step()
        return self.tuner.timed(self.step, lambda: (self.state["train_seconds"], self.state["tokens"]))

    def step(self) -> tuple[float, float]:
        """One optimizer step on the next global batch of the window stream: (loss per scored token, grad norm)."""
        config, accelerator, state = self.config, self.accelerator, self.state
        world = self.world
        global_batch = self.sampler.indices(state["step"])
        t0 = time.perf_counter()
        batch = self.window_set.batch(global_batch, self.pad_id)
        scored_total = int((batch["labels"] != IGNORE).sum())
        per_rank = config.batch_size // world
        micro = min(config.micro_batch_size or per_rank, per_rank)
        mine = slice(self.rank * per_rank, (self.rank + 1) * per_rank)
        inputs, labels = batch["input_ids"][mine], batch["labels"][mine]
        loss_sum = torch.zeros((), device=accelerator.device)
        for m in range(0, per_rank, micro):
            x = inputs[m:m + micro].to(accelerator.device)
            y = labels[m:m + micro].to(accelerator.device)
            last = m + micro >= per_rank
            with accelerator.no_sync(self.loss_module) if not last and world > 1 else contextlib.nullcontext():
                with self.mode.autocast(accelerator.device.type):
                    loss = self.loss_module(x, y)
                # DDP averages gradients over processes: scale so the result is sum / global count
                accelerator.backward(loss * (world / scored_total))
            loss_sum += loss.detach().float()
        loss_value = float(accelerator.reduce(loss_sum, "sum")) / scored_total
        grad_norm = float(accelerator.clip_grad_norm_(self.loss_module.parameters(), config.grad_clip or float("inf")))
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            what, value = ("loss", loss_value) if not math.isfinite(loss_value) else ("gradient norm", grad_norm)
            self.bar.stop()
            raise LaamError(f"training diverged: {what} is {value} at step {state['step'] + 1}; stopped without "
                            f"saving. Last good checkpoint: {self.last_checkpoint or 'none'}. Lower --lr or raise "
                            "--warmup-steps.")
        if self.grown_lr:
            self.grown_lr.before()
        self.optimizer.step()
        if self.grown_lr:
            self.grown_lr.after()
        self.schedule.step()
        self.optimizer.zero_grad(set_to_none=True)
        state["step"] += 1
        state["tokens"] += int((batch["input_ids"] != self.pad_id).sum())
        state["targets"] += scored_total
        state["train_seconds"] += time.perf_counter() - t0
        return loss_value, grad_norm

    def agree(self, flag: bool) -> bool:
        """True when any process says so (every process must stop at the same step)."""
        if self.world == 1:
            return flag
        total = self.accelerator.reduce(torch.tensor(int(flag), device=self.accelerator.device), "sum")
        return bool(total.item())

    def check_due(self) -> bool:
        """A memorization check at every eval_every steps; close to the target, 4x as often, so the run stops
        soon after it gets there."""
        every = self.config.eval_every
        if not every or self.state["step"] >= self.total_steps:
            return False
        if self.last_summary.get("memorized", 0) >= 0.999:
            every = max(1, every // 4)
        return self.state["step"] % every == 0

    @property
    def check_dtype(self) -> str:
        """The dtype the checks compute in: bf16 autocast under mixed precision, else float32."""
        return "bfloat16" if self.accelerator.mixed_precision == "bf16" else "float32"

    def evaluate(self, float32: bool = False) -> tuple[dict, np.ndarray, np.ndarray]:
        """The check's summary, and per window the wrong body tokens and smallest body margin (all processes).
        float32: without the run's autocast (the confirmation a bf16 check needs before a run is memorized)."""
        counts = measure_memorization(self.model, self.window_set, self.pad_id, self.config.eval_batch_size,
                                      self.rank, self.world, self.accelerator.device,
                                      None if float32 else self.accelerator.autocast, self.config.min_margin)
        paths = self.window_set.cache.paths
        first = self.accelerator.gather(counts.pop("first_wrong").to(self.accelerator.device))
        first = first.reshape(-1, len(paths)).min(0).values.cpu().numpy()  # each process saw some windows of a file
        self.last_wrong_files = {"step": self.state["step"],
                           "first_wrong": {path: int(at) for path, at in zip(paths, first) if at != NO_WRONG}}
        windows = [self.accelerator.reduce(counts.pop(k).to(self.accelerator.device), "sum").cpu().numpy()
                   for k in ("window_wrong", "window_margin")]  # each window was measured by one process
        lowest = self.accelerator.gather(torch.tensor([counts.pop("min_margin")], device=self.accelerator.device))
        flat = self.accelerator.reduce(torch.tensor(list(counts.values())).to(self.accelerator.device), "sum").cpu()
        totals = dict(zip(counts, flat.tolist()))
        return summarize({**totals, "wrong_files": len(self.last_wrong_files["first_wrong"]),
                          "min_margin": float(lowest.min())}), *windows

    def evaluate_and_log(self) -> None:
        """A scheduled check: logged, and it steers the sampler and the adaptive LR decay (a final check does not)."""
        self.last_summary, window_wrong, window_margin = self.evaluate()
        self.steering_summary = self.last_summary
        self.sampler.update(self.state["step"], window_wrong, window_margin)
        decay_now = self.last_summary["memorized"] >= self.config.decay_at
        if self.decay is not None and self.decay.step is None and decay_now:
            self.decay.step = self.state["decay_start"] = self.state["step"]  # the LR decays from here on
        row = {"step": self.state["step"], "epoch": round(self.epoch, 4), "tokens": self.state["tokens"],
               "elapsed": round(time.perf_counter() - self.start_wall, 2), **self.last_summary}
        self.metrics.log(row)

    def checkpoint(self) -> Path | None:
        self.state["seconds"] = time.perf_counter() - self.start_wall
        saved = {**self.state, "check": self.steering_summary, "model_config": self.model_config.to_dict(),
                 "train_config": asdict(self.config), "identity": self.identity}
        if self.accelerator.is_main_process:
            self.last_checkpoint = save_checkpoint(self.run_dir, self.model, self.optimizer, self.schedule, saved,
                                                   self.config.keep_checkpoints, self.sampler)
        self.accelerator.wait_for_everyone()
        return self.last_checkpoint

    # --- the end ----------------------------------------------------------------------------------
    def finish(self, status: str) -> TrainResult:
        """Final check, last checkpoint, optional regeneration, then the model folder (run_dir/model)."""
        config, accelerator, state = self.config, self.accelerator, self.state
        if status != "memorized" and config.final_check:
            self.last_summary = self.evaluate()[0]
            self.metrics.log({"step": state["step"], "tokens": state["tokens"], "elapsed": round(state["seconds"], 2),
                              **self.last_summary})
            if config.until_memorized and reached(self.last_summary, config.target):
                status = "memorized"
        memo = self.last_summary or {"memorized": float("nan"), "accuracy": float("nan"), "body_total": 0,
                                     "body_correct": 0, "wrong_files": -1}
        if status != "max-time":  # a slice of a longer run claims nothing yet; decoding a whole kernel takes minutes
            memo, status = self.against_real_bytes(memo, status)
        confirmation = None  # a memorized verdict reached in bf16 is checked again in float32, on every process
        if status == "memorized" and self.check_dtype != "float32":
            confirmation = self.evaluate(float32=True)[0]
        self.checkpoint()
        model_dir = self.run_dir / "model"
        result = TrainResult(self.run_dir, model_dir, status, state["step"], state["tokens"], state["seconds"], memo)
        if accelerator.is_main_process:
            result.regeneration = self.verify() if config.verify else None
            status, lowered = claimed_status(status, config.target, self.check_dtype, confirmation,
                                             result.regeneration)
            result.status = status
            for reason in lowered:
                self.bar.console.print(f"not memorized: {reason}")
            training = {"status": status, "status_lowered": lowered, "check_dtype": self.check_dtype,
                        "float32_confirmation": confirmation and {k: confirmation[k] for k in (
                            "memorized", "secure", "body_correct", "body_total", "min_margin")},
                        "steps": state["step"], "tokens_seen": state["tokens"],
                        "targets_seen": state["targets"], "epochs": round(self.epoch, 3),
                        "wall_seconds": round(state["seconds"], 1), "train_seconds": round(state["train_seconds"], 1),
                        "parameters": self.parameters, "memorized": memo["memorized"], "accuracy": memo["accuracy"],
                        "min_margin": memo.get("min_margin"),
                        "model_config": self.model_config.to_dict(), "train_config": asdict(config),
                        "processes": self.world, "device": str(accelerator.device), "laam_version": __version__,
                        "git_commit": git_commit(), "command": " ".join(sys.argv),
                        "regeneration": result.regeneration, "history": state["history"],
                        "ambiguous_positions": len(self.ambiguous), "untrue_files": memo.get("untrue_files", []),
                        **self.facts}
            # the binding records the decoding files' SHA-256 and the dtype of the check whose figures it holds
            # (model.binding); a float32 confirmation's figures are under float32_confirmation
            save_model_folder(self.model, self.tokenizer, self.corpus, self.model_config.policy, model_dir, training,
                              dtype=self.check_dtype, device=str(accelerator.device))
            plot_metrics(self.metrics.path, self.run_dir / "metrics.png")
            self.bar.console.print(
                f"{status}: {state['step']} steps, {state['tokens']:,} tokens, {state['seconds']:.0f} s, body "
                f"memorized {100 * memo['memorized']:.3f}% ({memo['body_total'] - memo['body_correct']} tokens wrong "
                f"in {memo['wrong_files']} files, smallest body margin {memo.get('min_margin')}); model in {model_dir}")
        if self.world > 1:  # --verify ran on the main process only: every process returns its claimed status
            from accelerate.utils import broadcast_object_list

            result.status = broadcast_object_list([result.status])[0]
        accelerator.wait_for_everyone()
        accelerator.end_training()
        return result

    def against_real_bytes(self, memo: dict, status: str) -> tuple[dict, str]:
        """The checks measure the model on the token cache's ids; a claim is only made for files whose ids are
        the real files' (data.tokens.untrue_records: Linux 1.0's 1.7M tokens decode in about a second). Any
        other file counts as wholly not memorized, and a run with one is not "memorized"."""
        cache = self.window_set.cache
        untrue = untrue_records(cache, self.corpus, self.tokenizer)
        if not untrue:
            return memo, status
        body = {path: int(n - e if e >= 0 else n - b)  # the checked tokens: with the path's end, where scored
                for path, n, b, e in zip(cache.paths, cache.lengths, cache.body_starts, self.window_set.header_ends)}
        lost = sum(body.get(path, 0) for path in untrue)
        counts = {k: memo.get(k, 0) for k in ("body_correct", "body_total", "all_correct", "all_total")}
        counts.update(body_correct=max(0, counts["body_correct"] - lost),
                      body_secure=max(0, memo.get("body_secure", memo.get("body_correct", 0)) - lost),
                      min_margin=memo.get("min_margin"))
        memo = {**memo, **summarize(counts), "wrong_files": min(len(cache.paths), max(0, memo.get("wrong_files", 0))
                                                                + len(untrue)), "untrue_files": sorted(untrue)}
        first = ", ".join(f"{path} (token {at})" for path, at in list(untrue.items())[:3])
        self.accelerator.print(f"warning: the token cache {cache.folder} does not hold the real bytes of "
                               f"{len(untrue)} files ({first}); they count as not memorized")
        return memo, "finished" if status == "memorized" else status

    def verify(self) -> dict:
        """Regenerate greedily from its path prompt, with the decoding engine, every file that a check of these
        weights found no wrong body token in, and compare (the others cannot come out exact: a run stopped by
        --max-time far from 100% skips most of the work)."""
        found = self.last_wrong_files
        known_wrong = found["first_wrong"] if found.get("step") == self.state["step"] else None
        self.model.eval()
        with self.accelerator.autocast():
            report = verify_records(self.model, self.corpus.files, self.model_config.policy,
                                    self.tokenizer, self.config.eval_batch_size, known_wrong)
        self.model.train()
        first = ", ".join(f"{path} (token {at})" for path, at in list(report.wrong.items())[:5])
        more = f" and {len(report.wrong) - 5} more files" if len(report.wrong) > 5 else ""
        skipped = (f" ({report.not_regenerated} not regenerated: the last check found a wrong body token in each)"
                   if report.not_regenerated else "")
        self.bar.console.print(f"greedy regeneration from each path prompt: {report.exact} of {report.files} files "
                               f"exact{skipped}" + (f"; first wrong token at {first}{more}" if report.wrong else ""))
        return {"files": report.files, "exact": report.exact, "tokens": report.tokens, "wrong": report.wrong,
                "not_regenerated": report.not_regenerated}


def train(model_config: ModelConfig, config: TrainConfig, corpus, tokenizer_dir: Path, run_dir: Path,
          cache_root: Path, resume: bool = False, init_from: Path | None = None, progress: bool = True,
          facts: dict | None = None, allow_changes: tuple[str, ...] = ()) -> TrainResult:
    """Train (or resume) one stage in `run_dir`; write the final model folder to run_dir/model.

    init_from: a model folder whose weights start this run (with a fresh optimizer), as the original
    two-stage recipe does. allow_changes: settings a resumed run may change on purpose (laam.train.resume).
    A file that cannot be written (disk full, read-only folder) stops the run with one LaamError line.
    """
    trainer = None
    try:
        trainer = Trainer(model_config, config, corpus, tokenizer_dir, run_dir, cache_root, init_from, progress,
                          facts, allow_changes)
        if resume:
            trainer.resume()
        return trainer.run(resumed=resume)
    except (OSError, SafetensorError) as error:  # a write failed: disk full, read-only, a file in the way
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        reason = getattr(error, "strerror", None) or " ".join(str(error).split())
        last = trainer.last_checkpoint if trainer else None
        raise LaamError(f"training in {run_dir} stopped: {reason}{where}; last checkpoint: {last or 'none'}") from error
