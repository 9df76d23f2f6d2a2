"""benchmarks/memorize_scaling.py: the power-law fit and the results file that parallel runs share."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from memorize_scaling import fit, save  # noqa: E402


def test_fit_recovers_a_power_law_and_needs_two_sizes():
    a, b = fit([(n, 40 * n**1.3) for n in (7_000, 16_000, 29_000)])
    assert a == pytest.approx(40, rel=1e-9) and b == pytest.approx(1.3, rel=1e-9)
    assert fit([(7_000, 1e6)]) is None
    assert fit([(7_000, 1e6), (7_000, 2e6)]) is None  # one corpus size twice: no slope


def test_save_keeps_what_another_process_wrote_in_between(tmp_path):
    store = tmp_path / "scaling.json"
    mine = save(store, "lib-s-v4096", {"tokens": 1})
    store.write_text(json.dumps({**mine, "lib-m-v4096": {"tokens": 2}}))  # the other size's process, meanwhile
    table = save(store, "ipc-s-v4096", {"tokens": 3})
    assert set(table) == {"lib-s-v4096", "lib-m-v4096", "ipc-s-v4096"}
    assert json.loads(store.read_text()) == table
