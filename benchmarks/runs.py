"""What a `laam train --out` folder says about its run, for the benchmarks that compare runs: the memorization
checks of metrics.jsonl (the token count at each) and the training record in model/laam.json."""

from __future__ import annotations

import json
from pathlib import Path


def metrics_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def check_rows(rows: list[dict]) -> list[dict]:
    """The memorization-check rows, in order (training rows have no "memorized")."""
    return [r for r in rows if "memorized" in r]


def first_at(checks: list[dict], share: float) -> dict | None:
    """The first check with at least `share` of body tokens right; None if none got there."""
    return next((r for r in checks if r["memorized"] >= share), None)


def training_record(out: Path) -> dict:
    """model/laam.json's "training" table: status, epochs, parameters, the regeneration's result."""
    return json.loads((Path(out) / "model" / "laam.json").read_text())["training"]
