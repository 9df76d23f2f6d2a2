"""benchmarks/fork_run.py: a run forked into branches that differ in one setting, each trained to the same step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from fork_run import parse_branch  # noqa: E402


def test_a_branch_is_a_name_and_its_flags():
    assert parse_branch("floor=--min-lr-ratio 0.15 --allow-change min_lr_ratio") == \
        ("floor", ["--min-lr-ratio", "0.15", "--allow-change", "min_lr_ratio"])
    assert parse_branch("as-is=") == ("as-is", [])
    for bad in ("no-equals", "=--lr 1", "a/b=--lr 1"):
        with pytest.raises(SystemExit, match="write NAME=FLAGS"):
            parse_branch(bad)


def laam_train(*args) -> None:
    done = subprocess.run([sys.executable, "-m", "laam", "train", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.slow  # three short trainings in subprocesses
def test_branches_resume_the_same_checkpoint_and_differ_only_in_their_flags(tarball, mirror, tmp_path):
    run, cache = tmp_path / "run", tmp_path / "cache"
    laam_train(tarball, "--preset", "tiny", "--cache", cache, "--out", run, "--max-steps", 40, "--no-until-memorized",
               "--no-verify", "--threads", 1, "-q")
    result = tmp_path / "fork.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fork_run.py"), "--run", str(run), "--cache", str(cache),
         "--release", str(tarball), "--mirror", str(mirror), "--work", str(tmp_path / "forks"), "--steps", "20",
         "--branch", "as-is=", "--branch", "slow=--lr 0.0001 --allow-change lr", "--files", "12",
         "--json", str(result)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads(result.read_text())
    assert figures["fork"]["checkpoint"] == "step-00000040" and figures["fork"]["last_check"]["step"] == 40
    branches = figures["branches"]
    assert branches["as-is"]["flags"] == "" and branches["slow"]["flags"] == "--lr 0.0001 --allow-change lr"
    for name, branch in branches.items():
        last = branch["checks"][-1]
        assert 40 < last["step"] <= 60 and 0 <= last["files_exact"] <= 12, (name, branch)
        assert branch["train_seconds"] > 0, (name, branch)
        assert name in done.stdout
    # each branch resumed the run's checkpoint; only the slow one records a changed learning rate
    history = {name: [json.loads(line) for line in (tmp_path / "forks" / name / "run" / "metrics.jsonl")
                      .read_text().splitlines()] for name in branches}
    starts = {name: [r for r in rows if r.get("event") == "start"][-1] for name, rows in history.items()}
    assert all(s["step"] == 40 and s["resumed"] for s in starts.values())
    lrs = {name: {r["lr"] for r in rows if "lr" in r and r["step"] > 40} for name, rows in history.items()}
    assert max(lrs["slow"]) <= 1e-4 < min(lrs["as-is"]), lrs
    with pytest.raises(subprocess.CalledProcessError):  # a branch folder is never overwritten
        subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fork_run.py"), "--run", str(run), "--cache",
                        str(cache), "--release", str(tarball), "--mirror", str(mirror), "--work",
                        str(tmp_path / "forks"), "--steps", "20", "--branch", "as-is="],
                       env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, check=True, timeout=300)
