"""The run-time thread choice (laam.train.threads): it follows measured step times, both ways."""

from __future__ import annotations

from laam.train.threads import ThreadTuner, available_cpus


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run_steps(tuner: ThreadTuner, clock: Clock, seconds_per_token: dict[int, float], steps: int) -> list[int]:
    """Steps of 1,000 tokens that take seconds_per_token[threads]; the thread count of each step."""
    used = []
    for _ in range(steps):
        threads = tuner.threads()
        used.append(threads)
        seconds = 1000 * seconds_per_token[threads]
        clock.now += seconds
        tuner.record(seconds, 1000)
    return used


def test_tuner_keeps_the_faster_count_and_follows_the_load():
    clock = Clock()
    tuner = ThreadTuner([1, 2], probe_steps=3, hold_seconds=5, max_hold_seconds=40, clock=clock)
    quiet = {1: 1e-4, 2: 6e-5}  # two threads faster: a quiet machine
    used = run_steps(tuner, clock, quiet, 6)
    assert used == [1, 1, 1, 2, 2, 2] and tuner.choice == 2
    used = run_steps(tuner, clock, quiet, 1500)
    assert used.count(1) < 0.1 * len(used)  # re-probes only now and then
    assert tuner.hold == 40  # the choice kept holding: re-probes spaced out to the maximum
    busy = {1: 1.1e-4, 2: 1.4e-3}  # another process on a core: two threads collapse
    used = run_steps(tuner, clock, busy, 20)
    assert tuner.choice == 1 and used[-5:] == [1] * 5
    assert used.count(2) <= 3 + 3  # the slowdown was seen within 3 steps, then one probe round
    used = run_steps(tuner, clock, quiet, 400)
    assert tuner.choice == 2  # the load went away: a later probe finds two threads faster again


def test_a_collapsed_count_is_judged_after_one_step():
    """Under load a step on two threads took 20x as long: the probe does not pay for three of them."""
    clock = Clock()
    tuner = ThreadTuner([1, 2], probe_steps=3, hold_seconds=5, clock=clock)
    used = run_steps(tuner, clock, {1: 1e-4, 2: 2e-3}, 60)
    assert used[:5] == [1, 1, 1, 2, 1] and tuner.choice == 1
    assert used.count(2) <= 4  # one step per re-probe (holds of 5, 10, 20 s: about 6 s of steps here)
    slow = {1: 1e-4, 2: 2e-2}  # a two-thread step 200x as long: probes are spaced by ten times their cost
    used = run_steps(tuner, clock, slow, 20000)
    at_two = 1000 * slow[2] * used.count(2)
    assert used.count(2) >= 2 and at_two / (at_two + 1000 * slow[1] * used.count(1)) < 0.1


def test_one_candidate_never_probes():
    tuner = ThreadTuner([1, 1], clock=Clock())
    assert tuner.threads() == 1
    tuner.record(1.0, 10)
    assert tuner.threads() == 1 and not tuner.queue


def test_available_cpus_follows_the_affinity_mask():
    import os

    assert available_cpus() == len(os.sched_getaffinity(0)) >= 1
