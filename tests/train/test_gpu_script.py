"""benchmarks/gpu_memorize.sh, run on CPU with the tiny preset: the script a lent GPU runs once must work first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_script_trains_verifies_audits_and_reports(tarball, tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "PRESET": "tiny", "LAAM_SOURCE": str(tarball),
           "RUN_DIR": str(tmp_path / "runs" / "gpu"), "EXTRA": "-q --threads 1", "PYTHONPATH": str(ROOT),
           "RESULT": str(tmp_path / "gpu_memorize.json")}
    done = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_memorize.sh")], env=env, capture_output=True,
                          text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "== machine:" in out and "time-to-100%" in out and "not reached" not in out
    assert "regeneration   12 of 12 files byte-exact" in out and "status         memorized" in out
    assert "audit          " in out and (tmp_path / "runs" / "gpu" / "model" / "README.md").is_file()
    result = json.loads((tmp_path / "gpu_memorize.json").read_text())  # the figures, through benchmarks/harness.py
    assert result["benchmark"] == "gpu_memorize" and result["reached"] and result["status"] == "memorized"
    assert result["regeneration"]["exact"] == 12 and result["checks"][-1]["memorized"] == 1.0
