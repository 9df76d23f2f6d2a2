"""What every benchmark script shares, written once: where the Linux 1.0 mirror is, the machine a figure was
measured on, starting a `laam train` from a dict of settings, reading a run folder back, and writing the figures
as JSON (benchmarks/results/NAME.json) with the command, commit, machine and date that make them reproducible.

The scripts run as `PYTHONPATH=. python benchmarks/NAME.py`, so this module is imported as `harness` (the
script's folder is on sys.path); benchmarks/results_table.py turns the JSON files into RESULTS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from laam.io import atomic_write_text
from laam.provenance import cpu_description, git_commit, git_dirty
from laam.train.metrics import METRICS_FILE, read_metrics

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEFAULT_MIRROR = ROOT.parent / "shared" / "data" / "kernel-mirror"


# --- the mirror -------------------------------------------------------------------------------------------------

def mirror(given: str | Path | None = None) -> Path | str:
    """The mirror laid out like kernel.org's pub/linux/kernel/: `given` (a --mirror flag), else $LAAM_MIRROR,
    else ../shared/data/kernel-mirror beside the checkout. A URL is passed on as it is (laam fetches from it); a
    folder must exist: one line, not a traceback, when it is not there."""
    chosen = str(given or os.environ.get("LAAM_MIRROR") or DEFAULT_MIRROR)
    if "://" in chosen:
        return chosen
    folder = Path(chosen)
    if not folder.is_dir():
        raise SystemExit(f"kernel mirror {folder} not found: set LAAM_MIRROR or pass --mirror to a folder holding "
                         "v1.0/linux-1.0.tar.xz")
    return folder


def tarball(given: str | Path | None = None) -> Path:
    """Linux 1.0's release archive in the mirror (see `mirror`), which must be a local folder here."""
    folder = mirror(given)
    if isinstance(folder, str):
        raise SystemExit(f"{folder} is a URL: this benchmark reads Linux 1.0 from a local mirror folder")
    path = folder / "v1.0" / "linux-1.0.tar.xz"
    if not path.is_file():
        raise SystemExit(f"{path} not found: the mirror holds no Linux 1.0 archive")
    return path


# --- the machine ------------------------------------------------------------------------------------------------

def describe() -> str:
    """One line: CPU model and the instruction sets that change CPU training speed (laam.provenance: bf16 is
    emulated without AVX512-BF16/AMX), the CPUs this process may use, the load average as the benchmark started,
    torch's version and GPU if any."""
    import torch

    cpu = cpu_description()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    gpu = f"; GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (f"machine: {cpu['cpu']} ({', '.join(cpu['cpu_flags']) or 'no AVX2/AVX-512/AMX'}), {cpu['cpus']} CPUs "
            f"usable, load average {load} at start; torch {torch.__version__}{gpu}")


def header(benchmark: str) -> dict:
    """Command, commit (with a dirty flag), date and machine of a benchmark's figures. Taken as the benchmark
    starts, so the load average is the one its figures were measured under."""
    commit = git_commit()
    return {"benchmark": benchmark, "command": " ".join(["python", *sys.argv]), "commit": commit and commit[:7],
            "dirty": git_dirty(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": describe(), **cpu_description()}


def write_result(name: str, figures: dict, head: dict | None = None, path: Path | None = None) -> Path:
    """benchmarks/results/NAME.json (or `path`): `head` (default: `header(name)` now) and the figures."""
    record = {**(head or header(name)), **figures}
    target = Path(path) if path else RESULTS / f"{name}.json"
    atomic_write_text(target, json.dumps(record, indent=1) + "\n")
    print(f"figures written to {target}")
    return target


# --- starting a training ----------------------------------------------------------------------------------------

def train_argv(settings: dict) -> list[str]:
    """`laam train`'s arguments from settings: "source" is the positional release; a key is its flag with `-` for
    `_` (a one-letter key its short flag, "q": True is `-q`); True is a bare flag, False its `--no-` form, a list or
    tuple one `--key=value` per item, None leaves it out.
    """
    argv = [str(settings["source"])] if "source" in settings else []
    for key, value in settings.items():
        name = key.replace("_", "-")
        flag = f"-{name}" if len(name) == 1 else f"--{name}"
        if key == "source" or value is None:
            continue
        if value is True:
            argv.append(flag)
        elif value is False:
            argv.append(f"--no-{name}")
        elif isinstance(value, (list, tuple)):
            argv += [f"{flag}={item}" for item in value]
        else:
            argv += [flag, str(value)]
    return argv


def laam_command(command: str, settings: dict, env: dict | None = None, what: str | None = None) -> float:
    """Run `python -m laam COMMAND` (this checkout's laam) with the settings as flags; wall seconds. A failure
    stops the benchmark with the command's last lines of stderr."""
    argv = [sys.executable, "-m", "laam", command, *train_argv(settings)]
    started = time.perf_counter()
    done = subprocess.run(argv, env={**(os.environ if env is None else env), "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{what or command} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started


def train(settings: dict, env: dict | None = None, what: str | None = None) -> float:
    """`laam train` with the settings (see `train_argv`); wall seconds."""
    return laam_command("train", settings, env, what)


# --- reading a run ----------------------------------------------------------------------------------------------

@dataclass
class Run:
    """A `laam train --out` folder's metrics.jsonl: every row in order, and the rows split by kind: training steps
    (they carry "loss"), memorization checks ("memorized") and events (a slice's start and stop)."""

    folder: Path
    rows: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)

    def first_at(self, share: float) -> dict | None:
        """The first check with at least `share` of body tokens right; None if none got there."""
        return next((r for r in self.checks if r["memorized"] >= share), None)

    def training(self) -> dict:
        """model/laam.json's "training" table: status, epochs, parameters, the regeneration's result."""
        return json.loads((self.folder / "model" / "laam.json").read_text())["training"]


def read_run(folder: Path) -> Run:
    rows = read_metrics(Path(folder) / METRICS_FILE)
    if not rows:
        raise SystemExit(f"{Path(folder) / METRICS_FILE} is missing or empty: not a `laam train --out` folder")
    return Run(Path(folder), rows, steps=[r for r in rows if "loss" in r], checks=[r for r in rows if "memorized" in r],
               events=[r for r in rows if "event" in r])


if __name__ == "__main__":
    print(describe())
