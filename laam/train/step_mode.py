"""How a training step runs, eager or `torch.compile`d, float32 or bf16 autocast, chosen from measured step times.

Which is fastest depends on the machine: on a CPU with AMX-BF16 (Sapphire Rapids) bf16 matmuls run 5-6x the
fp32 GEMM speed and a compiled bf16 step of `demo-kernel`'s shape took 0.75x an eager fp32 one; where bf16 is
emulated (AVX2 only) bf16 autocast is several times slower; compiling costs 20-30 s and pays only over a long
run. So, like the thread count (train.threads), the mode is measured on the machine at hand: before the first
step, each candidate runs a few steps of the real model shape on real batches, on a throwaway copy of the model
and optimizer (the run's weights, optimizer and RNG are untouched), interleaved round by round so a change in
the load hits every candidate alike, and the fastest median time per step wins.

What is measured only ever changes speed, never what counts as memorized: the memorization checks and
`--verify` read the fp32 weights in fp32 (autocast is applied to the training step alone), so a check gives the
same counts whatever mode trained. A probe costs up to a minute, so it runs only when the planned run is long
enough for it to be a small share (`worth_probing`); short runs (tests, demos) keep eager fp32. Several
processes keep the configured mode (each would have to agree on the same one).

Hand-written because neither torch nor accelerate chooses between these modes.
"""

from __future__ import annotations

import copy
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from laam.provenance import cpu_description

PROBE_SHARE = 0.02  # a probe may cost at most this share of the planned run's time
PROBE_COST_STEPS = 60  # a probe's cost in eager steps, counting compilation (20-30 s) at a typical CPU step


@dataclass(frozen=True)
class StepMode:
    compile: bool
    bf16: bool

    def __str__(self) -> str:
        return f"{'compiled' if self.compile else 'eager'} {'bf16 autocast' if self.bf16 else 'float32'}"

    def autocast(self, device_type: str):
        """The context a training forward pass runs in (a no-op in float32)."""
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=self.bf16)


def native_bf16() -> bool:
    """The CPU multiplies bf16 in hardware (AVX512-BF16 or AMX-BF16); elsewhere torch emulates it, slowly."""
    return bool({"avx512_bf16", "amx_bf16"} & set(cpu_description()["cpu_flags"]))


def candidates(compile_: bool | None, precision: str, device_type: str) -> list[StepMode]:
    """The modes worth measuring: a setting the user fixed is kept; `compile=None` tries both; precision `auto`
    tries bf16 autocast on a CPU with native bf16 only (CUDA's auto is bf16, set up by accelerate)."""
    compiles = [compile_] if compile_ is not None else [False, True]
    if precision == "float32" or device_type == "cuda":  # on CUDA accelerate applies the precision itself
        bf16s = [False]
    elif precision == "bf16":
        bf16s = [True]
    else:
        bf16s = [False, True] if device_type == "cpu" and native_bf16() else [False]
    return [StepMode(c, b) for c in compiles for b in bf16s]


def worth_probing(modes: list[StepMode], planned_steps: int, processes: int) -> bool:
    return len(modes) > 1 and processes == 1 and planned_steps * PROBE_SHARE >= PROBE_COST_STEPS


def measure_modes(make_step: Callable[[StepMode], Callable[[int], None]], modes: list[StepMode], rounds: int = 3,
                  steps: int = 2, warmup: int = 3, clock=time.perf_counter) -> dict[StepMode, float]:
    """Median seconds per step of each mode. `make_step(mode)` returns `step(i)`, running the i-th probe batch;
    the first `warmup` calls of each (compilation included) are not timed."""
    runners = {mode: make_step(mode) for mode in modes}
    for step in runners.values():
        for i in range(warmup):
            step(i)
    times: dict[StepMode, list[float]] = {mode: [] for mode in modes}
    for r in range(rounds):
        for mode, step in runners.items():
            for s in range(steps):
                start = clock()
                step(warmup + r * steps + s)
                times[mode].append(clock() - start)
    return {mode: statistics.median(t) for mode, t in times.items()}


def probe_step(model, loss_factory: Callable, batches: Callable[[int], tuple[torch.Tensor, torch.Tensor]],
               device_type: str, grad_clip: float) -> Callable[[StepMode], Callable[[int], None]]:
    """make_step for measure_modes: a full training step (forward, backward, clip, AdamW) of a deep copy of
    `model`, so nothing of the run changes."""

    def make_step(mode: StepMode) -> Callable[[int], None]:
        copy_ = copy.deepcopy(model)
        loss_module = loss_factory(copy_)
        if mode.compile:
            loss_module = torch.compile(loss_module)
        optimizer = torch.optim.AdamW(copy_.parameters(), lr=1e-6)

        def step(i: int) -> None:
            inputs, labels = batches(i)
            with mode.autocast(device_type):
                loss = loss_module(inputs, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(copy_.parameters(), grad_clip or float("inf"))
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        return step

    return make_step


def choose_step_mode(modes: list[StepMode], make_step, **measure) -> tuple[StepMode, dict[StepMode, float]]:
    """The fastest mode and every mode's measured seconds per step (the RNG is left as it was)."""
    with torch.random.fork_rng():
        times = measure_modes(make_step, modes, **measure)
    return min(times, key=times.get), times
