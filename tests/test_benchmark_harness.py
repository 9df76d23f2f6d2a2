"""benchmarks/harness.py: the argv a benchmark's settings become, a run folder split by kind of row, the mirror's
one-line error, and the header every result file carries."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import harness  # noqa: E402


def test_train_argv_spells_each_kind_of_setting_as_laam_train_takes_it():
    argv = harness.train_argv({"source": "1.0", "preset": "demo", "out": Path("/tmp/x"), "overwrite": True,
                               "until_memorized": False, "q": True, "include": ["linux/lib/", "linux/mm/"],
                               "max_time": None, "min_margin": 1.5, "threads": 0})
    assert argv == ["1.0", "--preset", "demo", "--out", "/tmp/x", "--overwrite", "--no-until-memorized", "-q",
                    "--include=linux/lib/", "--include=linux/mm/", "--min-margin", "1.5", "--threads", "0"]


def test_read_run_splits_steps_checks_and_events_and_skips_a_cut_last_line(tmp_path):
    rows = [{"event": "start", "step": 0, "tokens": 0}, {"step": 1, "loss": 5.0, "tokens": 100, "elapsed": 1.0},
            {"step": 2, "tokens": 200, "elapsed": 2.0, "memorized": 0.5},
            {"step": 3, "loss": 1.0, "tokens": 300, "elapsed": 3.0},
            {"step": 4, "tokens": 400, "elapsed": 4.0, "memorized": 1.0}, {"event": "stop", "step": 4, "tokens": 400}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(map(json.dumps, rows)) + '\n{"step": 5, "lo')
    run = harness.read_run(tmp_path)
    assert run.rows == rows
    assert [r["step"] for r in run.steps] == [1, 3]
    assert [r["step"] for r in run.checks] == [2, 4]
    assert [r["event"] for r in run.events] == ["start", "stop"]
    assert run.first_at(0.9)["step"] == 4 and run.first_at(0.4)["step"] == 2
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "laam.json").write_text(json.dumps({"training": {"status": "memorized"}}))
    assert run.training() == {"status": "memorized"}


def test_read_run_of_a_folder_without_metrics_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="metrics.jsonl is missing or empty"):
        harness.read_run(tmp_path)


def test_mirror_comes_from_the_flag_then_the_environment_and_says_what_to_set_when_missing(tmp_path, monkeypatch):
    (tmp_path / "env" / "v1.0").mkdir(parents=True)
    (tmp_path / "env" / "v1.0" / "linux-1.0.tar.xz").write_bytes(b"")
    monkeypatch.setenv("LAAM_MIRROR", str(tmp_path / "env"))
    assert harness.mirror() == tmp_path / "env"
    assert harness.tarball() == tmp_path / "env" / "v1.0" / "linux-1.0.tar.xz"
    assert harness.mirror(tmp_path) == tmp_path
    with pytest.raises(SystemExit, match="set LAAM_MIRROR or pass --mirror"):
        harness.mirror(tmp_path / "nowhere")
    with pytest.raises(SystemExit, match="holds no Linux 1.0 archive"):
        harness.tarball(tmp_path)
    assert harness.mirror("https://cdn.kernel.org/pub/linux/kernel/") == "https://cdn.kernel.org/pub/linux/kernel/"
    with pytest.raises(SystemExit, match="is a URL"):
        harness.tarball("https://cdn.kernel.org/pub/linux/kernel/")


def test_write_result_puts_the_header_before_the_figures(tmp_path):
    path = harness.write_result("probe", {"tokens_per_s": 123.0}, path=tmp_path / "probe.json")
    record = json.loads(path.read_text())
    assert record["benchmark"] == "probe" and record["tokens_per_s"] == 123.0
    assert record["command"].startswith("python ") and record["machine"].startswith("machine: ")
    assert len(record["commit"]) == 7 and isinstance(record["dirty"], bool) and record["date"][:2] == "20"
    assert record["cpus"] >= 1


def test_train_runs_this_checkout_s_laam_and_the_run_reads_back(tarball, tmp_path):
    out = tmp_path / "run"
    wall = harness.train({"source": tarball, "cache": tmp_path / "cache", "preset": "tiny", "out": out,
                          "until_memorized": True, "verify": False, "threads": 1, "q": True})
    run = harness.read_run(out)
    assert wall > 0 and run.steps and run.checks
    assert run.first_at(1.0) is not None and run.training()["status"] == "memorized"
    with pytest.raises(SystemExit, match="(?s)tiny-run failed:\n.*No such option: --no-such-flag"):
        harness.train({"source": tarball, "preset": "tiny", "no_such_flag": 1}, what="tiny-run")
