"""CPU threads for training, chosen while it runs from measured step times.

On a quiet 2-core machine two threads are faster than one (1.0-1.6x); on a busy one they collapse: libgomp's
threads spin at every barrier while another process holds a core, and training fell from ≈ 9,800 tokens/s on
one thread to ≈ 730 on two (/work/shared/notes/cpu-training-facts.md). No setting fixed at start-up wins on
both, and the load changes during a run. So the trainer asks `ThreadTuner` before each step: it times a few
steps at each candidate count (1 and the CPUs this process may use), keeps the fastest in seconds per token,
tries the others again after a while (sooner when the chosen count suddenly slows down), and waits longer
between tries while the choice holds. `torch.set_num_threads` may change between steps; on the machines
measured, losses and gradients came out bit for bit the same at 1 and 2 threads.

Hand-written because neither torch nor OpenMP adapts the thread count to the load of other processes.
"""

from __future__ import annotations

import os
import statistics
import time

import torch


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a container or `taskset` may allow fewer than cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def set_threads(device_type: str, threads: int, processes: int) -> ThreadTuner | None:
    """Set torch's CPU threads for training: `threads`, or (0) this process's share of the CPUs it may use, with a
    ThreadTuner to follow the load when there is more than one to choose from."""
    share = max(1, available_cpus() // processes)
    if device_type != "cpu":
        return None
    torch.set_num_threads(threads or share)
    return ThreadTuner([1, share // 2, share]) if not threads and share > 1 else None


class ThreadTuner:
    """Picks torch's intra-op thread count step by step: probe each candidate, keep the fastest, re-probe.

    Call `threads()` before a step and `record(seconds, tokens)` after it.
    """

    def __init__(self, candidates: list[int], probe_steps: int = 3, hold_seconds: float = 20.0,
                 max_hold_seconds: float = 320.0, slowdown: float = 1.6, clock=time.perf_counter):
        self.candidates = sorted(set(candidates))
        self.probe_steps, self.slowdown, self.clock = probe_steps, slowdown, clock
        self.min_hold, self.max_hold, self.hold = hold_seconds, max_hold_seconds, hold_seconds
        self.rates: dict[int, float] = {}  # seconds per token measured in the last probe of each candidate
        self.choice = self.candidates[-1]
        self.queue = list(self.candidates) if len(self.candidates) > 1 else []  # counts still to probe
        self.samples: list[float] = []
        self.spent: dict[int, float] = {}  # seconds of steps at each count during the current probe
        self.since = self.clock()  # when the current choice was made
        self.recent: list[float] = []  # seconds per token of the last steps at the choice
        self.switches = 0

    def threads(self) -> int:
        return self.queue[0] if self.queue else self.choice

    def __str__(self) -> str:
        return f"1 to {self.candidates[-1]} (chosen from step times)"

    def timed(self, step, seconds_and_tokens):
        """Run `step()` at the chosen count; `seconds_and_tokens()` gives the running totals it advances."""
        if torch.get_num_threads() != self.threads():
            torch.set_num_threads(self.threads())
        seconds, tokens = seconds_and_tokens()
        out = step()
        after = seconds_and_tokens()
        self.record(after[0] - seconds, after[1] - tokens)
        return out

    def record(self, seconds: float, tokens: int) -> None:
        rate = seconds / max(1, tokens)
        if self.queue:
            self.samples.append(rate)
            self.spent[self.queue[0]] = self.spent.get(self.queue[0], 0.0) + seconds
            known = [r for c, r in self.rates.items() if c != self.queue[0]]
            # a count already far slower than one measured before needs no more steps to be judged (under load
            # a step on two threads took 20x as long)
            hopeless = known and rate > self.slowdown * min(known)
            if hopeless or len(self.samples) >= self.probe_steps:
                self.rates[self.queue.pop(0)] = statistics.median(self.samples)
                self.samples = []
                if not self.queue:
                    self._choose()
            return
        self.recent = (self.recent + [rate])[-self.probe_steps:]
        slowed = (len(self.recent) == self.probe_steps and self.choice in self.rates
                  and min(self.recent) > self.slowdown * self.rates[self.choice])
        if len(self.candidates) > 1 and (slowed or self.clock() - self.since >= self.hold):
            if slowed:
                self.hold = self.min_hold
            if len(self.recent) == self.probe_steps:  # the choice's own latest rate, for the probe to beat
                self.rates[self.choice] = statistics.median(self.recent)
            self.queue = [c for c in self.candidates if c != self.choice] + [self.choice]
            self.recent = []

    def _choose(self) -> None:
        best = min(self.rates, key=self.rates.get)
        if best == self.choice:  # the choice held: look again later
            self.hold = min(self.max_hold, 2 * self.hold)
        else:
            self.hold, self.switches = self.min_hold, self.switches + 1
        # probing costs at most a tenth of the time: a step on two threads beside a busy process took 28 s where
        # one thread took 2 s, so the next probe waits at least ten times what this one lost
        lost = sum(seconds for count, seconds in self.spent.items() if count != best)
        self.hold, self.spent = max(self.hold, 10 * lost), {}
        self.choice, self.since = best, self.clock()
