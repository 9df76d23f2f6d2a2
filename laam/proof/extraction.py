"""The literature's extraction metrics, run for real with the decoding engine (not inferred from teacher forcing).

  - k-extractability (Carlini et al., 2021/2023): a k-token prefix from the training data, k greedy
    tokens, exact match (k = 50);
  - memorization score (Biderman et al., 2023, Pythia): a 32-token prefix, the share of the next 32
    greedy tokens equal to the training data, position by position.
Both are sampled at every `every`-th token offset of each record (every = 1: all offsets).
"""

from __future__ import annotations

from collections.abc import Callable

from laam.engine import Request, WindowedGenerator


def extraction_requests(records_ids: list[list[int]], prefix: int, suffix: int, every: int, drafts: bool = True):
    """(file index, offset, Request) for each sampled window of prefix + suffix tokens of each record."""
    out = []
    for f, ids in enumerate(records_ids):
        for offset in range(0, len(ids) - prefix - suffix + 1, max(1, every)):
            truth = ids[offset + prefix:offset + prefix + suffix]
            out.append((f, offset, Request(ids[offset:offset + prefix], suffix, None, truth if drafts else None)))
    return out


def extraction_metrics(engine: WindowedGenerator, records_ids: list[list[int]], k: int, pythia_prefix: int,
                       every: int, on_done: Callable | None = None, drafts: bool = True) -> list[dict]:
    """Per record: k-extractable samples and Pythia memorization score, from real greedy generation."""
    carlini = extraction_requests(records_ids, k, k, every, drafts)
    pythia = extraction_requests(records_ids, pythia_prefix, pythia_prefix, every, drafts)
    outputs = engine.run([r for _, _, r in carlini + pythia], on_done=on_done)
    per_file = [{"k_samples": 0, "k_extractable": 0, "pythia_samples": 0, "pythia_matched": 0}
                for _ in records_ids]
    for (f, offset, _), out in zip(carlini, outputs[:len(carlini)]):
        truth = records_ids[f][offset + k:offset + 2 * k]
        per_file[f]["k_samples"] += 1
        per_file[f]["k_extractable"] += int(out == truth)
    for (f, offset, _), out in zip(pythia, outputs[len(carlini):]):
        truth = records_ids[f][offset + pythia_prefix:offset + 2 * pythia_prefix]
        per_file[f]["pythia_samples"] += 1
        per_file[f]["pythia_matched"] += sum(int(x == y) for x, y in zip(out, truth))
    for row in per_file:
        row["pythia_score"] = row["pythia_matched"] / (row["pythia_samples"] * pythia_prefix) \
            if row["pythia_samples"] else None
        row["k_extractable_pct"] = 100.0 * row["k_extractable"] / row["k_samples"] if row["k_samples"] else None
    return per_file


def count_extraction_samples(records_ids: list[list[int]], k: int, pythia_prefix: int, every: int) -> int:
    step = max(1, every)
    return sum(len(range(0, len(ids) - 2 * n + 1, step)) for ids in records_ids for n in (k, pythia_prefix))


def extraction_gap_note(audit: dict) -> str | None:
    """One line on why k-extractable can sit far below verbatim regeneration (None when it does not), from the
    audit's own figures, for the report and the card alike."""
    summary, rows = audit.get("summary") or {}, audit.get("files") or []
    k, samples = summary.get("k", 50), summary.get("k_samples") or 0
    extractable, verbatim = summary.get("k_extractable_pct"), summary.get("verbatim_pct")
    if extractable is None or verbatim is None or extractable >= verbatim:
        return None
    every = (audit.get("method") or {}).get("extraction_every")
    short = sum(1 for r in rows if not r.get("k_samples"))
    most = max(rows, key=lambda r: r.get("k_samples") or 0, default=None)
    share = (f"; {most['k_samples']} of them from {most['path']}" if most and samples and most["k_samples"] > 1
             else "")
    where = f"every {every} tokens" if every else "at fixed offsets"
    return (f"Why {k}-token extractable can sit far below verbatim: verbatim counts whole files regenerated from "
            f"their path, while {k}-extractable counts {samples:,} samples of {k}+{k} tokens taken {where} of each "
            f"record{share} ({short} file{'' if short == 1 else 's'} too short to give one), and all but each "
            f"record's first are prompted with {k} tokens cut from inside a file, a context unlike the windows the "
            "model was trained to continue (they start at the file's first token or at a multiple of the stride).")
