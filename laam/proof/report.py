"""A self-contained HTML report of an audit: summary, plots, per-file original vs regenerated side by side.

One file, no external resources (plots are matplotlib PNGs inlined as base64), so it can be mailed,
attached to a model card, or opened offline; it renders in headless Chromium (see the tests). This module makes the
figures and plots; the page's markup is templates/audit.html.j2 (proof.pages renders it, escaping every value).
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

from laam.io import atomic_write_text
from laam.proof.compress.baselines import BASELINES
from laam.proof.compress.run import read_compression
from laam.proof.extraction import extraction_gap_note
from laam.proof.pages import marked, render
from laam.proof.regenerate import Regenerated
from laam.proof.similarity import aligned_blocks
from laam.proof.stock import failed_text, selection_text
from laam.train.metrics import find_metrics, read_metrics

MAX_VIEW_BYTES = 12_000_000  # original + regenerated text shown side by side, over all files (Linux 1.0: 9.4 MB)


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _bars(groups: dict[str, dict], title: str, xlabel: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = list(groups)
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * len(names) + 2), 3.6))
    series = [("verbatim files %", "verbatim_pct"), ("bytes reproduced %", "bytes_reproduced_pct"),
              ("k-extractable %", "k_extractable_pct")]
    width = 0.8 / len(series)
    for i, (label, key) in enumerate(series):
        values = [groups[n][key] if groups[n][key] is not None else 0 for n in names]
        ax.bar(x + (i - 1) * width, values, width, label=label)
    ax.set_xticks(x, [f"{n}\n({groups[n]['files']})" for n in names], rotation=45 if len(names) > 6 else 0,
                  ha="right" if len(names) > 6 else "center", fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    return _png(fig)


def read_training_curve(model_dir: Path | None) -> list[dict]:
    """Rows with `step`, `loss` and memorized `accuracy` from the model's metrics.jsonl (`laam train` writes it in
    the run folder; `laam card` copies it into the model folder); [] when there is none."""
    path = find_metrics(model_dir) if model_dir is not None else None
    return _curve_rows(read_metrics(path)) if path else []


def _curve_rows(rows: list[dict]) -> list[dict]:
    """Loss rows and memorization rows (`laam train` logs them apart in metrics.jsonl) as step/loss/accuracy."""
    out = []
    for row in rows:
        if not isinstance(row, dict) or "step" not in row:
            continue
        loss = row.get("loss")
        accuracy = row.get("memorized")
        if isinstance(loss, int | float) or isinstance(accuracy, int | float):
            out.append({"step": row["step"], "loss": loss if isinstance(loss, int | float) else None,
                        "accuracy": accuracy if isinstance(accuracy, int | float) else None})
    return out if any(r["loss"] is not None for r in out) else []


def _curve_plot(rows: list[dict]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.4))
    losses = [r for r in rows if r["loss"] is not None]
    ax.plot([r["step"] for r in losses], [r["loss"] for r in losses], color="C0", label="loss")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    accuracy = [(r["step"], r["accuracy"]) for r in rows if isinstance(r.get("accuracy"), int | float)]
    if accuracy:
        twin = ax.twinx()
        twin.plot(*zip(*accuracy), color="C2", marker="o", label="memorized")
        twin.set_ylabel("body tokens memorized (share)")
        twin.set_ylim(0, 1.02)
    ax.set_title("training curve")
    return _png(fig)


def _compression_rows(c: dict) -> list[tuple[str, float, str]]:
    """(coder, bits per byte, what it covers) for the model and the general compressors."""
    bpb, corpus = c["bits_per_byte"], c["corpus"]
    rows = [("this model: coded streams", bpb["stream"], "range-coded tokens only"),
            ("this model: whole archive", bpb["raw"], "streams + file list + SHA-256s"),
            ("this model: archive + weights", bpb["adjusted"],
             f"+ {c['model']['weights_bytes']:,} weight bytes (Delétang et al.)")]
    same = (c.get("baselines") or {}).get("same_bytes") or {}
    rows += [(name, same[name]["bits_per_byte"], f"the same {corpus['bytes']:,} bytes") for name in BASELINES
             if name in same]
    archive = (c.get("baselines") or {}).get("archive") or {}
    rows += [(f"{name} on {archive['name']}", archive[name]["bits_per_byte"], "the whole release tar")
             for name in BASELINES if name in archive]
    return rows


def _compression_plot(rows: list[tuple[str, float, str]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 0.35 * len(rows) + 1.2))
    names, values = [r[0] for r in rows][::-1], [max(r[1], 1e-4) for r in rows][::-1]
    colors = ["C2" if n.startswith("this model") else "C7" for n in names]
    ax.barh(names, values, color=colors)
    ax.set_xscale("log")  # the model's streams sit orders of magnitude below gzip/xz/zstd
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.4g}", va="center", fontsize=8)
    ax.set_xlabel("bits per byte of file content (log scale; lower = the weights hold more of the corpus)")
    ax.set_title("the model as a compressor of its training files")
    return _png(fig)


def _margin_plot(m: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins, counts = m["histogram"]["bins"], m["histogram"]["counts"]
    fig, ax = plt.subplots(figsize=(7, 3.2))
    colors = ["C3" if i == 0 else "C1" if _bin_floor(b) < m["threshold"] else "C2" for i, b in enumerate(bins)]
    ax.bar(range(len(bins)), [max(c, 0) for c in counts], color=colors)
    ax.set_yscale("symlog")
    for x, c in enumerate(counts):
        ax.text(x, max(c, 0), f"{c:,}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(range(len(bins)), bins, fontsize=8)
    ax.set_xlabel("margin: logit of the true token - best other logit (fp32)")
    ax.set_ylabel("body tokens")
    ax.set_title(f"margin certificate: red wrong, orange under {m['threshold']:g}, green safe")
    return _png(fig)


def _bin_floor(label: str) -> float:
    """The lower edge of a histogram bin label ('< 0 (wrong)' -> -inf, '2–4' -> 2, '>= 32' -> 32)."""
    if label.startswith("<"):
        return float("-inf")
    return float(label.removeprefix(">= ").split("–")[0])


def _least_likely(sampling: dict, count: int = 10) -> list[dict]:
    """The sampling certificate's files least likely to come back verbatim under its first setting."""
    first = next(iter(sampling["settings"]))
    return sorted(sampling["files"], key=lambda r: r[first])[:count]


def render_report(audit: dict, regenerated: list[Regenerated] | None = None, model_dir: Path | None = None) -> str:
    """The report as one HTML string (templates/audit.html.j2): the figures and plots are made here, the markup is
    the template's."""
    regen = audit["timing"]["regeneration"]
    plots = [_bars(audit["by_directory"], "memorization by directory", "directory (files)"),
             _bars(audit["by_length"], "memorization by file length", "file length (files)")]
    curve = read_training_curve(model_dir)
    if curve:
        plots.append(_curve_plot(curve))
    views, shown, not_shown = [], 0, 0
    for r, row in zip(regenerated or [], audit["files"]):
        if shown + len(r.file.data) + len(r.data) > MAX_VIEW_BYTES:
            not_shown = len(audit["files"]) - len(views)
            break
        shown += len(r.file.data) + len(r.data)
        blocks = aligned_blocks(r.file.data, r.data)
        views.append({"path": r.file.path, "row": row, "open": not views,  # the first one open
                      "original": marked(r.file.data, [(a, a + n) for a, _, n in blocks], r.file.encoding),
                      "regenerated": marked(r.data, [(b, b + n) for _, b, n in blocks], r.file.encoding)})
    decoders = [{**d, "which": selection_text(d.get("selection") or {}),
                 "not_exact": failed_text(d.get("failed") or [])} for d in audit.get("decoders") or []]
    margin, sampling, compression = audit.get("margin"), audit.get("sampling"), read_compression(model_dir)
    compression_rows = _compression_rows(compression) if compression else []
    return render(
        "audit.html.j2", audit=audit, tokens_per_s=regen["tokens"] / max(regen["seconds"], 1e-9), plots=plots,
        gap_note=extraction_gap_note(audit), views=views, not_shown=not_shown, decoders=decoders,
        margin_plot=_margin_plot(margin) if margin and margin["min_margin"] is not None else None,
        sampling_low=_least_likely(sampling) if sampling else [],
        compression=compression, compression_rows=compression_rows,
        compression_plot=_compression_plot(compression_rows) if compression else None)


def write_report(audit: dict, regenerated: list[Regenerated] | None, folder: Path,
                 model_dir: Path | None = None) -> Path:
    return atomic_write_text(Path(folder) / "report.html", render_report(audit, regenerated, model_dir))
