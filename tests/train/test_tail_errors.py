"""benchmarks/tail_errors.py: the list of tokens a run still gets wrong, on the tiny model and a damaged copy."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from tail_errors import shared_run  # noqa: E402


def test_shared_run_counts_back_to_the_records_start():
    ids = np.array([1, 2, 3, 9, 1, 2, 3, 7])
    assert shared_run(ids, target=7, start=4, longest=256) == 3  # 1 2 3 also ends before the 9; the record starts at 4
    assert shared_run(ids, target=7, start=5, longest=256) == 2  # only 2 3 lies inside the record
    assert shared_run(ids, target=7, start=4, longest=1) == 1  # never past the context
    assert shared_run(np.array([5, 6, 7, 8]), target=3, start=0, longest=256) == 0  # 7 occurs nowhere else


def run_script(*args) -> str:
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tail_errors.py"), *map(str, args)],
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_lists_nothing_for_the_memorized_model_and_every_wrong_token_of_a_damaged_one(tiny_model_dir, tmp_path):
    from safetensors.numpy import load_file, save_file

    run = tmp_path / "run"
    run.mkdir()
    (run / "model").symlink_to(tiny_model_dir)
    out = run_script(run, "--cache", tmp_path / "cache")
    assert re.search(r": 0 checked tokens \(bodies and path ends\) wrong of [\d,]+ \(context 128, stride 64\)",
                     out), out

    weights = load_file(str(tiny_model_dir / "model.safetensors"))
    damaged = {name: (w * 0.3 if ".layers.1.mlp." in name else w) for name, w in weights.items()}
    (tmp_path / "damaged").mkdir()
    save_file(damaged, str(tmp_path / "damaged" / "model.safetensors"))
    out = run_script(run, "--cache", tmp_path / "cache", "--checkpoint", tmp_path / "damaged")
    wrong = int(re.search(r": ([\d,]+) checked tokens \(bodies and path ends\) wrong", out).group(1).replace(",", ""))
    listed = re.findall(r"^  (linux/lib/\S+):(\d+)  after .*: wants .*, predicts .* \(margin -[\d.]+\); "
                        r"shared run (\d+) tokens$", out, re.M)
    assert wrong > 0 and len(listed) == wrong
    per_file = dict((path, int(count)) for count, path in re.findall(r"^ +(\d+) (linux/lib/\S+)$", out, re.M))
    assert sum(per_file.values()) == wrong and set(per_file) == {path for path, _, _ in listed}
    assert all(0 <= int(run_length) <= 128 for _, _, run_length in listed)
