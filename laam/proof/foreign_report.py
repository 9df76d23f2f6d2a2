"""What an audit of any model writes: audit.json, continuations.csv, and a self-contained report.html with every
caught file's continuations and their traced spans highlighted (the CSS and marking of proof.report)."""

from __future__ import annotations

import csv
import html
import io
import json
from pathlib import Path

from laam.data.corpus import CorpusFile
from laam.io import atomic_write_text
from laam.proof.report import CSS, _marked

SHOWN_PER_FILE = 4  # continuations shown per caught file in the HTML


def write_json(audit: dict, folder: Path) -> Path:
    return atomic_write_text(Path(folder) / "audit.json", json.dumps(audit, indent=1) + "\n")


def write_csv(continuations, files: list[CorpusFile], folder: Path) -> Path:
    buffer = io.StringIO()
    rows = [c.row(files) for c in continuations]
    columns = list(rows[0]) if rows else ["path"]
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "traced_files": " ".join(row.get("traced_files", []))})
    return atomic_write_text(Path(folder) / "continuations.csv", buffer.getvalue())


def _table(head: list[str], rows: list[list]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>" for row in rows)
    return "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + f"</tr>{cells}</table>"


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def render(audit: dict, continuations, files: list[CorpusFile]) -> str:
    s = audit["summary"]
    settings = _table(["setting", "prefix", "suffix", "continuations", "exact", "exact rate", "memorization score",
                       "files extracted", "longest span (bytes)"],
                      [[name, g["prefix"], g["suffix"], g["samples"], g["exact"], _pct(g["exact_rate"]),
                        _pct(g["memorization_score"]), g["files_extracted"], g["longest_span"]]
                       for name, g in audit["settings"].items()])
    licenses = _table(["license", "traced bytes", "spans", "exact-suffix bytes"],
                      [[k, f"{v['traced_bytes']:,}", v["spans"], f"{v['exact_suffix_bytes']:,}"]
                       for k, v in audit["licenses"].items()])
    caught = [r for r in audit["files"] if r["caught"]]
    file_rows = _table(["file", "license", "bytes", "prompts", "exact", "longest span", "whole file"],
                       [[r["path"], r["license"], f"{r['bytes']:,}", r["samples"], r["exact"], r["longest_span"],
                         "–" if r["verbatim"] is None else ("verbatim" if r["verbatim"] else "no")]
                        for r in caught])
    shown = []
    index = {f.path: i for i, f in enumerate(files)}
    for r in caught:
        mine = [c for c in continuations if c.prompt.file == index[r["path"]] and c.spans][:SHOWN_PER_FILE]
        for c in mine:
            marks = [(sp.start, sp.start + sp.length) for sp in c.spans]
            where = "; ".join(html.escape(sp.describe()) for sp in c.spans)
            shown.append(f"<details><summary><code>{html.escape(r['path'])}</code> {c.prompt.setting} offset "
                         f"{c.prompt.offset}{' (sampled)' if c.sampled else ''}: "
                         f"{'<span class=yes>exact</span>' if c.exact else '<span class=no>not exact</span>'}"
                         f"</summary><p class=meta>{where}</p><pre>{_marked(c.text, marks, 'utf-8')}</pre></details>")
    return (f"<!doctype html><html><head><meta charset=utf-8><title>extraction audit of {html.escape(audit['model'])}"
            f"</title><style>{CSS}</style></head><body><h1>Extraction audit: <code>{html.escape(audit['model'])}"
            f"</code></h1><p class=meta>corpus {html.escape(audit['corpus']['name'])} ({s['files']} files), "
            f"documents as {audit['document_format']}, context {audit['context']} tokens</p>"
            f"<table class=big><tr><td>files caught</td><td class=n>{s['caught_files']} of {s['files']}</td></tr>"
            f"<tr><td>exact continuations (greedy)</td><td class=n>{s['exact']:,} of {s['prompts']:,} "
            f"({_pct(s['exact_rate'])})</td></tr><tr><td>longest verbatim span</td><td class=n>{s['longest_span']:,} "
            f"bytes</td></tr><tr><td>GPL-2.0 bytes traced</td><td class=n>{s['gpl2_traced_bytes']:,}</td></tr></table>"
            f"<h2>Settings</h2>{settings}<h2>Licenses of what came back</h2>{licenses}"
            f"<h2>Files caught</h2>{file_rows}<h2>Continuations with traced spans</h2>{''.join(shown)}"
            f"<h2>Method</h2>{_table(['figure', 'how'], [[k, v] for k, v in audit['method'].items()])}"
            "</body></html>")


def write_foreign_report(audit: dict, continuations, files: list[CorpusFile], folder: Path) -> dict[str, Path]:
    return {"json": write_json(audit, folder), "csv": write_csv(continuations, files, folder),
            "html": atomic_write_text(Path(folder) / "report.html", render(audit, continuations, files))}
