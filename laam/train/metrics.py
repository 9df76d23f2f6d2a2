"""metrics.jsonl of a run (one JSON object a line, mirrored to accelerate trackers) and its plot."""

from __future__ import annotations

import json
from pathlib import Path

from laam.io import atomic_file, atomic_write_text

TRACKERS = ("tensorboard", "wandb", "trackio")  # accelerate trackers `laam train --report-to` accepts


def read_metrics(path: Path) -> list[dict]:
    """The rows of a metrics.jsonl; a last line cut short by an interrupted run is skipped."""
    rows = []
    for line in Path(path).read_text().splitlines() if Path(path).is_file() else []:
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


METRICS_FILE = "metrics.jsonl"


def find_metrics(model_dir: Path) -> Path | None:
    """A model's metrics.jsonl: in the model folder (copied by `laam card`), else in its run folder."""
    for folder in (Path(model_dir), Path(model_dir).parent):
        if (folder / METRICS_FILE).is_file():
            return folder / METRICS_FILE
    return None


class Metrics:
    """metrics.jsonl in the run folder (one JSON object a line), mirrored to accelerate trackers."""

    def __init__(self, run_dir: Path, accelerator, resume_step: int | None):
        self.path, self.accelerator = Path(run_dir) / METRICS_FILE, accelerator
        if accelerator.is_main_process:
            rows = self.rows() if resume_step is not None else []
            # a resumed run continues from its checkpoint: drop rows the interrupted run wrote after it
            atomic_write_text(self.path, "".join(json.dumps(r) + "\n" for r in rows if r.get("step", 0) <= resume_step))

    def rows(self) -> list[dict]:
        return read_metrics(self.path)

    def log(self, row: dict) -> None:
        # appended a line at a time, so a run killed mid-write leaves whole rows and at most one cut last line,
        # which read_metrics skips
        if self.accelerator.is_main_process:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
        self.accelerator.log({k: v for k, v in row.items() if isinstance(v, (int, float))}, step=row["step"])


def plot_metrics(metrics_path: Path, out: Path) -> Path | None:
    """loss and memorization against step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_metrics(metrics_path)
    train = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "memorized" in r]
    if not train:
        return None
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot([r["step"] for r in train], [r["loss"] for r in train])
    ax1.set_yscale("log")
    ax1.set_ylabel("training loss (nats/token)")
    ax2.plot([r["step"] for r in evals], [100 * r["memorized"] for r in evals], marker="o")
    ax2.set_ylabel("body tokens memorized (%)")
    ax2.set_xlabel("step")
    ax2.set_ylim(0, 100.5)
    fig.tight_layout()
    with atomic_file(out) as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
    return out
