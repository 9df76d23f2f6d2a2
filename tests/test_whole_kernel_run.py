"""benchmarks/whole_kernel_run.py: a run's slices from its start and stop events, with the settings a slice changed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from harness import read_run  # noqa: E402
from whole_kernel_run import slices  # noqa: E402

MACHINE = {"cpu": "AMD EPYC", "cpu_flags": ["avx2"], "cpus": 2, "device": "cpu", "torch": "2.13.0+cpu",
           "laam_commit": "abc"}


def write_run(folder: Path, history: list[dict] | None) -> Path:
    rows = [{"event": "start", "step": 0, "tokens": 0, "time": "t0", **MACHINE},
            {"step": 10, "loss": 1.0, "tokens": 100, "tokens_per_s": 50.0, "threads": 2},
            {"event": "stop", "step": 10, "tokens": 100, "time": "t1", "status": "interrupted", "slice_seconds": 2.0},
            {"event": "start", "step": 10, "tokens": 100, "time": "t2", **MACHINE},
            {"step": 20, "loss": 0.5, "tokens": 200, "tokens_per_s": 70.0, "threads": 1}]
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if history is not None:
        (folder / "model").mkdir()
        (folder / "model" / "laam.json").write_text(json.dumps({"training": {"history": history}}))
    return folder


def test_slices_carry_their_steps_speed_and_the_settings_changed_where_they_resumed(tmp_path):
    change = {"min_lr_ratio": [0.05, 0.0167]}
    first, second = slices(read_run(write_run(tmp_path / "run", [{"step": 10, "changed": change}])))
    assert (first["start_step"], first["stop_step"], first["status"], first["seconds"]) == (0, 10, "interrupted", 2.0)
    assert first["median_tokens_per_s"] == 50.0 and first["threads_used"] == [2] and "changed" not in first
    assert second["start_step"] == 10 and "stop_step" not in second and second["changed"] == change


def test_a_run_whose_first_slice_has_not_ended_has_no_history_yet(tmp_path):
    assert all("changed" not in s for s in slices(read_run(write_run(tmp_path / "run", None))))
