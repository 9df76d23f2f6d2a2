"""What an audit of any model writes: audit.json, continuations.csv, and a self-contained report.html with every
caught file's continuations and their traced spans highlighted (templates/foreign.html.j2, with the audit report's
CSS)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from laam.data.corpus import CorpusFile
from laam.figures import share_pct
from laam.io import atomic_write_text
from laam.proof.pages import marked
from laam.proof.pages import render as render_page

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


def _pct(x) -> str:
    """A share of 1 (a rate, a score) as a percentage, rounded down (laam.figures): 0.99996 is 99.9%, not 100%."""
    return share_pct(x, 1, "–")


def render(audit: dict, continuations, files: list[CorpusFile]) -> str:
    """The report as one HTML string: the tables' cells are made here, the markup is the template's."""
    settings = (["setting", "prefix", "suffix", "continuations", "exact", "exact rate", "memorization score",
                 "files extracted", "longest span (bytes)"],
                [[name, g["prefix"], g["suffix"], g["samples"], g["exact"], _pct(g["exact_rate"]),
                  _pct(g["memorization_score"]), g["files_extracted"], g["longest_span"]]
                 for name, g in audit["settings"].items()])
    licenses = (["license", "traced bytes", "spans", "exact-suffix bytes"],
                [[k, f"{v['traced_bytes']:,}", v["spans"], f"{v['exact_suffix_bytes']:,}"]
                 for k, v in audit["licenses"].items()])
    caught = [r for r in audit["files"] if r["caught"]]
    caught_table = (["file", "license", "bytes", "prompts", "exact", "longest span", "whole file"],
                    [[r["path"], r["license"], f"{r['bytes']:,}", r["samples"], r["exact"], r["longest_span"],
                      "–" if r["verbatim"] is None else ("verbatim" if r["verbatim"] else "no")]
                     for r in caught])
    shown = []
    index = {f.path: i for i, f in enumerate(files)}
    for r in caught:
        mine = [c for c in continuations if c.prompt.file == index[r["path"]] and c.spans][:SHOWN_PER_FILE]
        shown += [{"path": r["path"], "setting": c.prompt.setting, "offset": c.prompt.offset, "sampled": c.sampled,
                   "exact": c.exact, "where": "; ".join(sp.describe() for sp in c.spans),
                   "text": marked(c.text, [(sp.start, sp.start + sp.length) for sp in c.spans], "utf-8")}
                  for c in mine]
    return render_page("foreign.html.j2", audit=audit, exact_rate=_pct(audit["summary"]["exact_rate"]),
                       settings=settings, licenses=licenses, caught=caught_table, continuations=shown,
                       method=(["figure", "how"], [[k, v] for k, v in audit["method"].items()]))


def write_foreign_report(audit: dict, continuations, files: list[CorpusFile], folder: Path) -> dict[str, Path]:
    return {"json": write_json(audit, folder), "csv": write_csv(continuations, files, folder),
            "html": atomic_write_text(Path(folder) / "report.html", render(audit, continuations, files))}
