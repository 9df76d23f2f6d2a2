"""The machine a benchmark ran on, and the header every benchmark's JSON carries.

`describe()` is one line: CPU model and the instruction sets that change CPU training speed (laam.provenance:
bf16 is emulated without AVX512-BF16/AMX), the CPUs this process may use, the load average when the benchmark
started, torch's version and GPU if any. `header(name)` is what makes a figure reproducible: the command, the
laam commit, the date and the machine, written at the top of each benchmark's JSON.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from laam.provenance import cpu_description

ROOT = Path(__file__).resolve().parents[1]


def cpu_model_and_flags() -> tuple[str, list[str]]:
    cpu = cpu_description()
    return cpu["cpu"], cpu["cpu_flags"]


def describe() -> str:
    import torch

    cpu = cpu_description()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    gpu = f"; GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"machine: {cpu['cpu']} ({', '.join(cpu['cpu_flags']) or 'no AVX2/AVX-512/AMX'}), {cpu['cpus']} CPUs "
            f"usable, load average {load} at start; torch {torch.__version__}{gpu}")


def header(benchmark: str) -> dict:
    """Command, commit (with a dirty flag), date and machine of a benchmark's figures."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                capture_output=True, text=True).stdout.strip())
    return {"benchmark": benchmark, "command": " ".join(["python", *sys.argv]), "commit": commit, "dirty": dirty,
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": describe(),
            **cpu_description()}


if __name__ == "__main__":
    print(describe())
