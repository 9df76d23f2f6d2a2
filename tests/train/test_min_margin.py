"""--min-margin: the memorization check counts body tokens right by at least the margin, and the stop rule waits
for all of them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from laam.engine.forcing import iter_margins
from laam.errors import LaamError
from laam.train.config import MIN_MARGIN, TrainConfig
from laam.train.memorization import measure_memorization, reached, summarize


@pytest.fixture(scope="module")
def tiny_windows(tiny_model_dir, tiny_corpus, tmp_path_factory):
    from laam.data.tokenizer import load_tokenizer
    from laam.data.tokens import build_token_cache
    from laam.model.folder import load_model
    from laam.train.batches import WindowSet

    torch.set_num_threads(1)
    loaded = load_model(tiny_model_dir)
    cache = build_token_cache(tiny_corpus, load_tokenizer(tiny_model_dir), tiny_model_dir,
                              tmp_path_factory.mktemp("cache"))
    return loaded, WindowSet(cache, loaded.policy), cache


def test_check_counts_tokens_right_by_the_margin(tiny_windows):
    from laam.proof.margin import body_margins

    loaded, window_set, cache = tiny_windows
    pad = loaded.tokenizer.convert_tokens_to_ids("<|pad|>")
    plain = measure_memorization(loaded.model, window_set, pad, batch_size=7)
    assert plain["body_correct"] == plain["body_total"] == plain["body_secure"] > 0  # memorized; margin 0: right
    records = [cache.record(i).tolist() for i in range(len(cache.paths))]
    margins = body_margins(loaded.model, records, cache.body_starts.tolist(), loaded.policy, pad)
    ends = np.concatenate([f.margins.margin[f.header_end].numpy() for f in iter_margins(loaded.model, window_set, pad)])
    assert len(margins) + len(ends) == plain["body_total"] and len(ends) == len(cache.paths)  # body and path ends
    checked = np.concatenate([margins.margin, ends])
    assert plain["min_margin"] == pytest.approx(float(checked.min()), abs=1e-4)  # the audit's body figure, and ends

    bar = float(np.sort(checked)[10]) + 1e-4  # 11 checked tokens are right by less than this
    strict = measure_memorization(loaded.model, window_set, pad, batch_size=64, min_margin=bar)
    assert strict["body_correct"] == strict["body_total"] and strict["body_secure"] == strict["body_total"] - 11
    memo = summarize({k: v for k, v in strict.items() if k != "wrong_by_file"})
    assert memo["memorized"] == 1.0 and memo["secure"] < 1.0
    assert not reached(memo, 1.0) and reached(summarize({k: v for k, v in plain.items() if k != "wrong_by_file"}), 1.0)


def test_min_margin_is_checked_and_defaults_to_the_measured_value():
    assert TrainConfig().min_margin == MIN_MARGIN > 0
    with pytest.raises(LaamError, match="min_margin"):
        TrainConfig(min_margin=-0.5)
    with pytest.raises(LaamError, match="min_margin"):
        TrainConfig(min_margin=float("nan"))


@pytest.mark.slow
def test_training_goes_on_until_every_token_clears_the_margin(tiny_corpus, tiny_tokenizer_dir, tmp_path):
    """Same seed, same data order: without a margin the run stops at the first check with every body token right;
    with one it goes on until the smallest margin clears it, and its metrics say so."""
    from laam.train.loop import train
    from tests.train.test_train import TINY_MODEL, tiny_train_config

    runs = {}
    for margin in (0.0, 3.0):
        config = tiny_train_config(min_margin=margin, eval_every=10)
        runs[margin] = train(TINY_MODEL, config, tiny_corpus, tiny_tokenizer_dir, tmp_path / f"m{margin}", tmp_path,
                             progress=False)
        assert runs[margin].status == "memorized"
    loose, strict = runs[0.0], runs[3.0]
    assert loose.memorization["memorized"] == 1.0 and loose.memorization["min_margin"] > 0
    assert strict.memorization["min_margin"] >= 3.0 and strict.steps > loose.steps
    rows = [json.loads(line) for line in (tmp_path / "m3.0" / "metrics.jsonl").read_text().splitlines()]
    checks = [r for r in rows if "secure" in r]
    first = next(r for r in checks if r["memorized"] == 1.0)
    assert first["step"] == loose.steps  # the same trajectory up to there
    assert checks[-1]["secure"] == 1.0 and all(r["secure"] < 1.0 for r in checks[:-1])
