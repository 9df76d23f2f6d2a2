"""How the lm-extraction-benchmark examples are drawn and scored."""

from __future__ import annotations

import numpy as np

from laam.proof.lm_extraction import draw_examples, recall_at_errors, suffix_guess


def test_examples_are_distinct_spans_drawn_with_a_seed():
    records = [list(range(n)) for n in (150, 99, 100, 420)]  # 51, 0, 1 and 321 spans of 100 tokens
    every = draw_examples(records, examples=10_000)
    assert len(every) == 51 + 1 + 321
    assert {(int(r), int(o)) for r, o in every} == {(r, o) for r, n in enumerate(map(len, records))
                                                    for o in range(n - 99)}
    some = draw_examples(records, examples=40, seed=3)
    assert len(some) == 40 and len({tuple(x) for x in some.tolist()}) == 40
    assert (some == draw_examples(records, examples=40, seed=3)).all()
    assert not (some == draw_examples(records, examples=40, seed=4)).all()
    assert all(o + 100 <= len(records[r]) for r, o in some)
    assert draw_examples([[1] * 50], examples=5).shape == (0, 2)


def test_draws_are_uniform_over_spans_not_files():
    records = [list(range(1099)), list(range(199))]  # 1,000 spans and 100 spans
    picks = np.concatenate([draw_examples(records, examples=110, seed=s)[:, 0] for s in range(50)])
    assert 0.85 < (picks == 0).mean() < 0.97  # ~10/11 from the long record


def test_recall_and_the_benchmarks_recall_at_100_errors():
    assert recall_at_errors(np.array([True] * 5 + [False] * 3), examples=10) == 0.5
    ranked = np.array([True] * 3 + [False] * 100 + [True] * 4)  # right guesses after the 100th error do not count
    assert recall_at_errors(ranked, examples=107) == 3 / 107
    assert recall_at_errors(np.array([False] * 99 + [True]), examples=100) == 0.01
    assert suffix_guess(np.array([3, 14, 159])) == "[3,14,159]"
