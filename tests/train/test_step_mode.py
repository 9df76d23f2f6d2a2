"""train.step_mode: eager/compiled x float32/bf16 chosen from measured step times; the checks unmoved by it."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import laam.train.loop as loop
from laam.data.tokenizer import load_tokenizer, special_ids
from laam.data.tokens import build_token_cache
from laam.model.config import build_model
from laam.model.folder import load_model
from laam.train.batches import WindowSet
from laam.train.loop import train
from laam.train.loss import WindowLoss
from laam.train.memorization import measure_memorization
from laam.train.metrics import read_metrics
from laam.train.step_mode import StepMode, candidates, choose_step_mode, measure_modes, probe_step, worth_probing
from tests.train.test_train import TINY_MODEL, tiny_train_config

EAGER, EAGER_BF16, COMPILED, COMPILED_BF16 = (StepMode(c, b) for c in (False, True) for b in (False, True))


def test_the_fastest_mode_wins_and_every_mode_is_timed_in_every_round():
    """A fake clock makes each step of a mode cost that mode's price; the order of calls shows the rounds are
    interleaved (a load change hits every mode alike) and warm-up calls are not timed."""
    price = {EAGER: 3.0, EAGER_BF16: 2.0, COMPILED: 1.5, COMPILED_BF16: 1.0}
    now, calls = [0.0], []

    def make_step(mode):
        def step(i):
            calls.append((mode, i))
            now[0] += price[mode] if i >= 3 else 100.0  # warm-up (compilation) is slow and must not count
        return step

    times = measure_modes(make_step, list(price), rounds=2, steps=1, warmup=3, clock=lambda: now[0])
    assert times == price
    assert [m for m, i in calls if i >= 3] == list(price) * 2
    best, _ = choose_step_mode(list(price), make_step, rounds=2, steps=1, warmup=3, clock=lambda: now[0])
    assert best == COMPILED_BF16


def test_candidates_keep_what_the_user_fixed(monkeypatch):
    monkeypatch.setattr("laam.train.step_mode.native_bf16", lambda: True)
    assert candidates(None, "auto", "cpu") == [EAGER, EAGER_BF16, COMPILED, COMPILED_BF16]
    assert candidates(False, "auto", "cpu") == [EAGER, EAGER_BF16]
    assert candidates(True, "float32", "cpu") == [COMPILED]
    assert candidates(None, "bf16", "cuda") == [EAGER, COMPILED]  # accelerate applies bf16 on CUDA
    monkeypatch.setattr("laam.train.step_mode.native_bf16", lambda: False)  # emulated bf16 is never tried
    assert candidates(None, "auto", "cpu") == [EAGER, COMPILED]
    assert candidates(False, "float32", "cpu") == [EAGER]


def test_short_runs_and_fixed_modes_are_not_probed():
    assert not worth_probing([EAGER, COMPILED], 200, 1)  # a test or a demo: the probe would cost more than it saves
    assert worth_probing([EAGER, COMPILED], 60_000, 1)  # a whole-kernel run
    assert not worth_probing([EAGER], 60_000, 1)
    assert not worth_probing([EAGER, COMPILED], 60_000, 2)  # processes would have to agree


@pytest.mark.parametrize("compile_", [False, None])
def test_a_run_that_is_not_probed_keeps_the_precision_it_was_given(tiny_corpus, tiny_tokenizer_dir, tmp_path,
                                                                    compile_):
    """--precision bf16 with --compile or --no-compile fixed (a fork of a bf16 run), or a run too short to probe:
    its steps run in bf16 autocast and its start event says so (it used to say float32, while accelerate's mixed
    precision autocast the forward pass)."""
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(True)  # accelerate keeps one precision per process: the earlier runs' float32
    try:
        train(replace(TINY_MODEL, precision="bf16"), tiny_train_config(max_steps=2, eval_every=0, compile=compile_),
              tiny_corpus, tiny_tokenizer_dir, tmp_path / "run", tmp_path, progress=False)
    finally:
        AcceleratorState._reset_state(True)
    start = next(r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r.get("event") == "start")
    assert start["step_mode"] == "eager bf16 autocast"


def test_a_probe_leaves_the_run_untouched(tiny_corpus, tiny_tokenizer_dir, tmp_path):
    """Probing trains copies: the run's weights and RNG are what they were."""
    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    special = special_ids(tokenizer)
    cache = build_token_cache(tiny_corpus, tokenizer, tiny_tokenizer_dir, tmp_path)
    windows = WindowSet(cache, TINY_MODEL.policy)
    model = build_model(TINY_MODEL, special)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    def batches(i):
        batch = windows.batch([i % len(windows), (i + 1) % len(windows)], special["<|pad|>"])
        return batch["input_ids"], batch["labels"]

    rng = torch.get_rng_state()
    best, times = choose_step_mode([EAGER, EAGER_BF16], probe_step(model, WindowLoss, batches, "cpu", 1.0),
                                   rounds=1, steps=1, warmup=1)
    assert set(times) == {EAGER, EAGER_BF16} and all(t > 0 for t in times.values()) and best in times
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert torch.equal(rng, torch.get_rng_state())


def test_bf16_training_steps_leave_the_checks_in_float32(tiny_corpus, tiny_tokenizer_dir, tmp_path, monkeypatch):
    """A run whose steps were measured fastest in bf16 autocast still checks in float32: its final check's counts
    and smallest margin are those of the saved weights measured in plain float32."""
    monkeypatch.setattr(loop, "worth_probing", lambda *a: True)
    monkeypatch.setattr(loop, "choose_step_mode", lambda modes, make_step: (EAGER_BF16, {EAGER: 2.0, EAGER_BF16: 1.0}))
    result = train(TINY_MODEL, tiny_train_config(max_steps=30, eval_every=0, log_every=1), tiny_corpus,
                   tiny_tokenizer_dir, tmp_path / "run", tmp_path, progress=False)
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl")
    start = next(r for r in rows if r.get("event") == "start")
    assert start["step_mode"] == "eager bf16 autocast" and start["step_mode_seconds"]["eager bf16 autocast"] == 1.0
    loaded = load_model(result.model_dir)
    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    windows = WindowSet(build_token_cache(tiny_corpus, tokenizer, tiny_tokenizer_dir, tmp_path), TINY_MODEL.policy)
    fp32 = measure_memorization(loaded.model.float(), windows, special_ids(tokenizer)["<|pad|>"],
                                min_margin=tiny_train_config().min_margin)
    check = [r for r in rows if "memorized" in r][-1]
    assert 0 < check["body_correct"] < check["body_total"]  # a partial model: near-ties exist for bf16 to move
    assert (check["body_correct"], check["body_secure"]) == (fp32["body_correct"], fp32["body_secure"])
    assert check["min_margin"] == round(fp32["min_margin"], 4)

