"""A self-contained HTML report of an audit: summary, plots, per-file original vs regenerated side by side.

One file, no external resources (plots are matplotlib PNGs inlined as base64), so it can be mailed,
attached to a model card, or opened offline; it renders in headless Chromium (see the tests).
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from laam.io import atomic_write_text
from laam.proof.compress.baselines import BASELINES
from laam.proof.compress.run import read_compression
from laam.proof.extraction import extraction_gap_note
from laam.proof.regenerate import Regenerated
from laam.proof.similarity import aligned_blocks
from laam.train.metrics import find_metrics, read_metrics

MAX_VIEW_BYTES = 12_000_000  # original + regenerated text shown side by side, over all files (Linux 1.0: 9.4 MB)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em auto;max-width:1400px;color:#222}
h1{font-size:1.6em;margin-bottom:.2em} h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0} td,th{padding:.25em .7em;border-bottom:1px solid #e4e4e4}
th{background:#f4f4f4;text-align:left} td.n{text-align:right;font-variant-numeric:tabular-nums}
.big td{font-size:1.15em} .meta{color:#666;font-size:.9em}
.plots{display:flex;flex-wrap:wrap;gap:.6em} .plots img{max-width:100%;border:1px solid #eee}
.side{display:grid;grid-template-columns:1fr 1fr;gap:.8em}
.side pre{font-size:12px;line-height:1.3;background:#fafafa;border:1px solid #ddd;padding:.5em;overflow:auto;
max-height:40em;white-space:pre-wrap;word-break:break-all}
mark{background:#c6f0c2} .yes{color:#11772e;font-weight:600} .no{color:#b3261e}
details{margin:.3em 0} summary{cursor:pointer}
"""


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


def _compression_section(c: dict | None) -> str:
    if not c:
        return ("<p class=meta>Not measured: run <code>laam compress --model MODEL --out MODEL/corpus.laamz</code>, "
                "then audit again, to add bits per byte under the model against gzip, xz and zstd.</p>")
    rows = _compression_rows(c)
    corpus, speed, roundtrip = c["corpus"], c.get("throughput") or {}, c.get("roundtrip")
    table = "".join(f"<tr><td>{html.escape(name)}</td><td class=n>{value:.4f}</td><td>{html.escape(what)}</td></tr>"
                    for name, value, what in rows)
    checked = (f"{roundtrip['verified']} of {roundtrip['files']} files decoded byte-exact (SHA-256 checked)"
               if roundtrip else "no round trip was run")
    decode = speed.get("decompress_bytes_per_s")
    return (f"<p><code>laam compress</code> arithmetic-coded {corpus['files']:,} files ({corpus['bytes']:,} bytes, "
            f"{corpus.get('coded_tokens', 0):,} tokens) under the model's own next-token probabilities; {checked}. "
            f"The model's cross-entropy is {c['bits_per_byte']['ideal']:.4f} bits per byte.</p>"
            f'<table id="compression"><tr><th>coder</th><th>bits per byte</th><th>covers</th></tr>{table}</table>'
            f'<div class="plots"><img alt="compression plot" src="{_compression_plot(rows)}"></div>'
            f"<p class=meta>Compress {speed.get('compress_bytes_per_s', 0):,.0f} bytes/s"
            + (f", decompress {decode:,.0f} bytes/s" if decode else "")
            + f" · archive <code>{html.escape(str(c['archive']['path']))}</code>, {c['archive']['bytes']:,} bytes"
            + ("" if corpus.get("training_corpus", True) else " · <b>not the corpus this model was trained on</b>")
            + "</p>")


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


def _margin_section(m: dict | None) -> str:
    if not m:
        return "<p class=meta>Not computed (<code>laam audit --no-margins</code>).</p>"
    if m["min_margin"] is None:
        return "<p class=meta>No body tokens.</p>"
    at, seq = m["min_margin_at"], m["sequential"]
    table = (
        '<table id="margin">'
        f"<tr><th>smallest margin</th><td class=n>{m['min_margin']:.3f}</td><td><code>{html.escape(at['path'])}"
        f"</code> token {at['position']:,}: {html.escape(repr(at['true']))} over {html.escape(repr(at['rival']))}"
        "</td></tr>"
        f"<tr><th>body tokens</th><td class=n>{m['body_tokens']:,}</td><td>every one scored</td></tr>"
        f"<tr><th>wrong under teacher forcing</th><td class=n>{m['wrong_tokens']:,}</td><td>margin &lt; 0</td></tr>"
        f"<tr><th>under the safety threshold</th><td class=n>{m['under_threshold']:,}</td><td>margin &lt; "
        f"{m['threshold']:g}; {m['low_listed']:,} listed below and decoded again sequentially: {seq['agrees']} "
        f"agree, {seq['differs']} differ, {seq['diverged earlier']} diverged earlier</td></tr></table>")
    low = "".join(
        f"<tr><td><code>{html.escape(r['path'])}</code></td><td class=n>{r['line']:,}</td>"
        f"<td class=n>{r['position']:,}</td><td class=n>{r['margin']:.3f}</td><td><code>{html.escape(repr(r['true']))}"
        f"</code></td><td><code>{html.escape(repr(r['rival']))}</code></td>"
        f"<td><code>{html.escape(repr(r['sequential_token']))}</code> ({html.escape(r['sequential'])})</td></tr>"
        for r in m["low"])
    listing = (f"<table id=\"low-margins\"><tr><th>file</th><th>line</th><th>token</th><th>margin</th><th>true token"
               f"</th><th>rival</th><th>sequential decode</th></tr>{low}</table>" if low else "")
    return (f"{table}<div class=\"plots\"><img alt=\"margin histogram\" src=\"{_margin_plot(m)}\"></div>{listing}"
            f"<p class=meta>{html.escape(m['method'])} Every token's margin is in <code>margins.npz</code>.</p>")


def _marked(data: bytes, spans: list[tuple[int, int]], encoding: str) -> str:
    """HTML of `data` with the byte ranges `spans` (sorted, disjoint) wrapped in <mark>."""
    parts, at = [], 0
    for start, end in spans:
        parts.append(html.escape(data[at:start].decode(encoding, errors="replace")))
        parts.append("<mark>" + html.escape(data[start:end].decode(encoding, errors="replace")) + "</mark>")
        at = end
    parts.append(html.escape(data[at:].decode(encoding, errors="replace")))
    return "".join(parts)


def _side_by_side(r: Regenerated, row: dict, open_: bool = False) -> str:
    blocks = aligned_blocks(r.file.data, r.data)
    original = _marked(r.file.data, [(a, a + n) for a, _, n in blocks], r.file.encoding)
    regenerated = _marked(r.data, [(b, b + n) for _, b, n in blocks], r.file.encoding)
    verdict = '<span class="yes">verbatim</span>' if row["verbatim"] else \
        f'<span class="no">differs from byte {row["prefix_bytes"]:,}</span>'
    opened = " open" if open_ else ""
    return (f'<details id="{html.escape(r.file.path)}"{opened}><summary><code>{html.escape(r.file.path)}</code> '
            f'— {verdict}, '
            f'{row["bytes_reproduced_pct"]:.1f}% of bytes reproduced</summary><div class="side">'
            f'<div><b>original</b> ({row["bytes"]:,} bytes)<pre>{original}</pre></div>'
            f'<div><b>regenerated</b> ({row["regenerated_bytes"]:,} bytes)<pre>{regenerated}</pre></div>'
            f'</div></details>')


def _sampling_section(c: dict | None) -> str:
    """The sampling certificate (proof.sampling): expected verbatim files per setting, and the least likely files."""
    if not c:
        return "<p class=meta>Not computed (<code>laam audit --no-sampling</code>).</p>"
    names = list(c["settings"])
    settings = "".join(f"<tr><td>{html.escape(name)}</td><td>{html.escape(g['description'])}</td>"
                       f"<td class=n>{g['expected_verbatim_files']:.3f} of {len(c['files'])}</td></tr>"
                       for name, g in c["settings"].items())
    low = sorted(c["files"], key=lambda r: r[names[0]])[:10]
    rows = "".join(f"<tr><td><code>{html.escape(r['path'])}</code></td>"
                   + "".join(f"<td class=n>{r[n]:.4g}</td>" for n in names) + "</tr>" for r in low)
    return (f"<table><tr><th>setting</th><th>sampling</th><th>expected files sampled verbatim</th></tr>{settings}"
            f"</table><p class=meta>The {len(low)} files least likely to come back verbatim under "
            f"{html.escape(names[0])}:</p><table><tr><th>file</th>"
            + "".join(f"<th>P(verbatim), {html.escape(n)}</th>" for n in names) + f"</tr>{rows}</table>"
            f"<p class=meta>{html.escape(c['method'])}.</p>")


def _fmt(x, digits=1, suffix="%"):
    return "–" if x is None else f"{x:.{digits}f}{suffix}"


def _group_table(groups: dict[str, dict], label: str) -> str:
    head = (f"<tr><th>{label}</th><th>files</th><th>bytes</th><th>verbatim</th><th>bytes reproduced</th>"
            "<th>edit similarity</th><th>k-extractable</th><th>Pythia score</th><th>min margin</th></tr>")
    rows = "".join(
        f"<tr><td>{html.escape(n)}</td><td class=n>{g['files']}</td><td class=n>{g['bytes']:,}</td>"
        f"<td class=n>{_fmt(g['verbatim_pct'])}</td><td class=n>{_fmt(g['bytes_reproduced_pct'])}</td>"
        f"<td class=n>{g['edit_similarity']:.3f}</td><td class=n>{_fmt(g['k_extractable_pct'])}</td>"
        f"<td class=n>{_fmt(g['pythia_score'], 3, '')}</td><td class=n>{_fmt(g.get('min_margin'), 3, '')}</td></tr>"
        for n, g in groups.items())
    return f"<table>{head}{rows}</table>"


def _lm_cell(lm: dict | None) -> str:
    return "–" if not lm else f"{lm['exact']:,} of {lm['examples']:,} ({lm['recall']:.3f})"


def _lm_note(lm: dict | None) -> str:
    return "" if not lm else f" lm-extraction-benchmark setting: {html.escape(lm['drawn'])}; <code>laam audit " \
        "--export lm-extraction</code> writes its CSV, prefixes and suffixes."


def render_report(audit: dict, regenerated: list[Regenerated] | None = None, model_dir: Path | None = None) -> str:
    """The report as one HTML string."""
    s, method, timing = audit["summary"], audit["method"], audit["timing"]
    regen = timing["regeneration"]
    summary = (
        '<table class="big" id="summary">'
        f"<tr><th>files</th><td class=n>{s['files']:,}</td><th>bytes</th><td class=n>{s['bytes']:,}</td></tr>"
        f"<tr><th>verbatim files</th><td class=n>{s['verbatim_files']:,} ({_fmt(s['verbatim_pct'])})</td>"
        f"<th>bytes reproduced in order</th><td class=n>{_fmt(s['bytes_reproduced_pct'])}</td></tr>"
        f"<tr><th>{s['k']}-extractable (Carlini et al.)</th><td class=n>{_fmt(s['k_extractable_pct'])} "
        f"of {s['k_samples']:,}</td><th>Pythia memorization score ({s['pythia_prefix']}+{s['pythia_prefix']})</th>"
        f"<td class=n>{_fmt(s['pythia_score'], 3, '')} on {s['pythia_samples']:,}</td></tr>"
        f"<tr><th>mean edit similarity</th><td class=n>{s['edit_similarity']:.3f}</td>"
        f"<th>exact prefix bytes</th><td class=n>{_fmt(s['prefix_bytes_pct'])}</td></tr>"
        f"<tr><th>lm-extraction-benchmark recall (50+50)</th><td class=n>{_lm_cell(audit.get('lm_extraction'))}</td>"
        f"<th>smallest margin (fp32 logits)</th><td class=n>{_fmt(s.get('min_margin'), 3, '')}</td></tr></table>")
    plots = [_bars(audit["by_directory"], "memorization by directory", "directory (files)"),
             _bars(audit["by_length"], "memorization by file length", "file length (files)")]
    curve = read_training_curve(model_dir)
    if curve:
        plots.append(_curve_plot(curve))
    plot_html = "".join(f'<img alt="plot" src="{p}">' for p in plots)
    file_rows = "".join(
        f"<tr><td><a href='#{html.escape(r['path'])}'><code>{html.escape(r['path'])}</code></a></td>"
        f"<td>{html.escape(str(r['license']))}</td><td class=n>{r['bytes']:,}</td>"
        f"<td class=n>{'<span class=yes>yes</span>' if r['verbatim'] else '<span class=no>no</span>'}</td>"
        f"<td class=n>{r['prefix_bytes']:,}</td><td class=n>{_fmt(r['bytes_reproduced_pct'])}</td>"
        f"<td class=n>{r['edit_similarity']:.3f}</td><td class=n>{r['longest_span_bytes']:,}</td>"
        f"<td class=n>{_fmt(r['k_extractable_pct'])}</td><td class=n>{_fmt(r['pythia_score'], 3, '')}</td>"
        f"<td class=n>{_fmt(r.get('min_margin'), 3, '')}</td></tr>"
        for r in audit["files"])
    views, shown = [], 0
    for r, row in zip(regenerated or [], audit["files"]):
        if shown + len(r.file.data) + len(r.data) > MAX_VIEW_BYTES:
            views.append(f"<p class=meta>{len(audit['files']) - len(views)} more files not shown side by side "
                         "(size limit); `laam extract` writes every regenerated file.</p>")
            break
        shown += len(r.file.data) + len(r.data)
        views.append(_side_by_side(r, row, open_=not views))  # the first one open
    corpus = audit["corpus"]
    note = extraction_gap_note(audit)
    gap_note = f'<p class=meta id="extractable-note">{html.escape(note)}</p>' if note else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>LaaM memorization audit — {html.escape(corpus['name'])}</title>
<style>{CSS}</style></head><body>
<h1>Memorization audit</h1>
<p class=meta>model <code>{html.escape(str(audit.get('model')))}</code> · corpus {html.escape(corpus['name'])}
(fingerprint {corpus['fingerprint']}) · context {method['context']}, stride {method['stride']} ·
{html.escape(method['decoding'])} · regeneration {regen['tokens']:,} tokens at
{regen['tokens'] / max(regen['seconds'], 1e-9):,.0f} tokens/s · audit {timing['seconds']:.1f} s</p>
<h2>Summary</h2>{summary}
<p class=meta>Every number is computed on the regenerated bytes against the original bytes. Bytes reproduced:
{html.escape(method['bytes_reproduced'])}. Extraction samples at every {method['extraction_every']}-th token
offset: {html.escape(method['extraction_offsets'])}.{_lm_note(audit.get('lm_extraction'))}</p>
{gap_note}
<h2>Plots</h2><div class="plots">{plot_html}</div>
<h2>Margin certificate</h2>{_margin_section(audit.get('margin'))}
<h2 id="sampling">Sampling certificate</h2>{_sampling_section(audit.get('sampling'))}
<h2>The model as a compressor</h2>{_compression_section(read_compression(model_dir))}
<h2>By directory</h2>{_group_table(audit['by_directory'], 'directory')}
<h2>By file length</h2>{_group_table(audit['by_length'], 'length')}
<h2>Files</h2><table><tr><th>path</th><th>license</th><th>bytes</th><th>verbatim</th><th>exact prefix</th>
<th>bytes reproduced</th><th>edit sim.</th><th>longest span</th><th>k-extractable</th><th>Pythia</th>
<th>min margin</th></tr>
{file_rows}</table>
<h2>Original and regenerated, side by side</h2>
<p class=meta>Highlighted: runs of the original reproduced in order in the regenerated file.</p>
{''.join(views)}
</body></html>
"""


def write_report(audit: dict, regenerated: list[Regenerated] | None, folder: Path,
                 model_dir: Path | None = None) -> Path:
    return atomic_write_text(Path(folder) / "report.html", render_report(audit, regenerated, model_dir))
