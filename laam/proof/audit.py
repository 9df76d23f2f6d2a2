"""Memorization audit: regenerate every file from its path prompt and measure, on the real bytes, what came back.

Per file: verbatim (exact bytes), longest exact prefix (bytes, tokens), share of the original's bytes
reproduced in order (longest common subsequence), normalized edit similarity, longest verbatim span.
Per corpus, the literature's extraction metrics on token windows of the training records:
  - k-extractability (Carlini et al., 2021/2023): a k-token prefix from the training data, k greedy
    tokens, exact match (k = 50);
  - memorization score (Biderman et al., 2023, Pythia): a 32-token prefix, the share of the next 32
    greedy tokens equal to the training data, position by position.
Both are run for real with the generation engine (not inferred from teacher forcing), at every
`every`-th token offset of each record (every = 1: all offsets).
"""

from __future__ import annotations

import fnmatch
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from laam import LaamError
from laam.corpus import END_FILE, Corpus, CorpusFile, file_bytes, path_prompt, top_directory
from laam.generate import Request, WindowedGenerator
from laam.tokenizer import decode_ids, encode_records, special_ids

LENGTH_BUCKETS = [(0, 1024, "< 1 KB"), (1024, 4096, "1–4 KB"), (4096, 16384, "4–16 KB"),
                  (16384, 65536, "16–64 KB"), (65536, 1 << 62, ">= 64 KB")]


@dataclass
class AuditConfig:
    files: str | None = None  # glob over corpus paths (`*` crosses `/`); None: every file
    batch_size: int = 64
    k: int = 50  # Carlini et al.'s prefix and continuation length
    pythia_prefix: int = 32  # Pythia's prefix and continuation length
    every: int = 512  # extraction offsets: 0, every, 2*every, ... of each record (1 = every offset)
    extraction: bool = True
    margin: float = 0.1  # regenerate at most (1 + margin) * original tokens + 16 (output past that is wrong anyway)
    drafts: bool = True  # verify the original as a draft, a window per forward pass (output is still exact greedy)


# --- per-file text metrics -----------------------------------------------------------------------

def common_prefix(a, b) -> int:
    n = min(len(a), len(b))
    if isinstance(a, bytes | bytearray) and isinstance(b, bytes | bytearray):
        if a[:n] == b[:n]:
            return n
        x, y = np.frombuffer(a[:n], np.uint8), np.frombuffer(b[:n], np.uint8)
        return int(np.argmax(x != y))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def longest_common_substring(a: bytes, b: bytes) -> tuple[int, int, int]:
    """(length, start in a, start in b) of the longest byte string occurring in both.

    Suffix array + LCP (pydivsufsort) over a, a separator and b: the longest common prefix of two
    neighbouring suffixes that start on different sides. Linear time, unlike difflib's quadratic worst case.
    """
    from pydivsufsort import divsufsort, kasai

    if not a or not b:
        return 0, 0, 0
    joined = np.concatenate([np.frombuffer(a, np.uint8).astype(np.int32), [256],
                             np.frombuffer(b, np.uint8).astype(np.int32)])
    sa = divsufsort(joined)
    lcp = kasai(joined, sa)  # lcp[i] = LCP(suffix sa[i], suffix sa[i + 1])
    side = sa > len(a)
    crossing = side[:-1] != side[1:]
    if not crossing.any():
        return 0, 0, 0
    candidates = np.where(crossing, lcp[:-1], -1)
    i = int(np.argmax(candidates))
    length = int(candidates[i])
    if length <= 0:
        return 0, 0, 0
    x, y = int(sa[i]), int(sa[i + 1])
    if x > y:
        x, y = y, x
    return length, x, y - len(a) - 1


MIN_BLOCK = 8  # shortest aligned run counted as reproduced: shorter runs match by chance in unrelated text
CHAR_ALIGN_LIMIT = 8192  # char-level alignment inside differing line blocks only up to this many bytes a side


def aligned_blocks(original: bytes, regenerated: bytes, min_block: int = MIN_BLOCK) -> list[tuple[int, int, int]]:
    """In-order alignment: (start in original, start in regenerated, length) of byte runs both share.

    difflib on lines first (fast, and code is line-shaped), then on the bytes of each differing
    pair of line blocks up to CHAR_ALIGN_LIMIT; runs shorter than `min_block` bytes are dropped so that
    unrelated text (an untrained model's output) scores near zero instead of by chance coincidences.
    """
    from difflib import SequenceMatcher

    a_lines, b_lines = original.splitlines(keepends=True), regenerated.splitlines(keepends=True)
    a_at = np.concatenate([[0], np.cumsum([len(x) for x in a_lines])]).astype(int)
    b_at = np.concatenate([[0], np.cumsum([len(x) for x in b_lines])]).astype(int)
    blocks = []
    for tag, i1, i2, j1, j2 in SequenceMatcher(None, a_lines, b_lines, autojunk=False).get_opcodes():
        a0, a1, b0, b1 = int(a_at[i1]), int(a_at[i2]), int(b_at[j1]), int(b_at[j2])
        if tag == "equal":
            blocks.append((a0, b0, a1 - a0))
        elif tag == "replace" and a1 - a0 <= CHAR_ALIGN_LIMIT and b1 - b0 <= CHAR_ALIGN_LIMIT:
            inner = SequenceMatcher(None, original[a0:a1], regenerated[b0:b1], autojunk=False)
            blocks.extend((a0 + m.a, b0 + m.b, m.size) for m in inner.get_matching_blocks() if m.size)
    merged: list[list[int]] = []  # join runs that touch on both sides (line block + char block)
    for a, b, n in blocks:
        if merged and merged[-1][0] + merged[-1][2] == a and merged[-1][1] + merged[-1][2] == b:
            merged[-1][2] += n
        else:
            merged.append([a, b, n])
    return [(a, b, n) for a, b, n in merged if n >= min_block]


def file_metrics(original: bytes, regenerated: bytes, original_ids: list[int], regenerated_ids: list[int]) -> dict:
    """Every per-file number of the audit, computed on the bytes themselves."""
    from rapidfuzz.distance import Levenshtein

    reproduced = sum(n for _, _, n in aligned_blocks(original, regenerated))
    span, _, _ = longest_common_substring(original, regenerated)
    return {
        "bytes": len(original),
        "regenerated_bytes": len(regenerated),
        "tokens": len(original_ids),
        "regenerated_tokens": len(regenerated_ids),
        "verbatim": original == regenerated,
        "prefix_bytes": common_prefix(original, regenerated),
        "prefix_tokens": common_prefix(original_ids, regenerated_ids),
        "reproduced_bytes": int(reproduced),
        "bytes_reproduced_pct": 100.0 * reproduced / len(original) if original else 100.0 * (not regenerated),
        # rapidfuzz compares code points: latin-1 gives one per byte
        "edit_similarity": float(Levenshtein.normalized_similarity(original.decode("latin-1"),
                                                                   regenerated.decode("latin-1"))),
        "longest_span_bytes": span,
    }


def content_bytes(content: str, encoding: str) -> bytes:
    """Generated text as the file's bytes; characters the file's encoding cannot hold fall back to UTF-8."""
    try:
        return file_bytes(content, encoding)
    except UnicodeEncodeError:
        return b"".join(c.encode(encoding) if ord(c) < 256 else c.encode("utf-8", "surrogateescape")
                        for c in content)


def split_output(tokenizer, ids: list[int]) -> tuple[list[int], bool]:
    """Generated body tokens up to (not including) <|end_file|>, and whether the model ended the file."""
    stop = special_ids(tokenizer)[END_FILE]
    if stop in ids:
        return ids[:ids.index(stop)], True
    return ids, False


def select_files(corpus: Corpus, pattern: str | None) -> list[CorpusFile]:
    if not pattern:
        return list(corpus.files)
    if pattern.endswith("/"):
        pattern += "*"
    chosen = [f for f in corpus.files if fnmatch.fnmatchcase(f.path, pattern)]
    if not chosen:
        raise LaamError(f"no corpus file matches --files {pattern!r} (paths look like {corpus.files[0].path})")
    return chosen


# --- regeneration ----------------------------------------------------------------------------------

@dataclass
class Regenerated:
    file: CorpusFile
    original_ids: list[int]  # body tokens of the original (no <|end_file|>)
    ids: list[int]  # body tokens generated (no <|end_file|>)
    ended: bool  # the model emitted <|end_file|>
    data: bytes  # the regenerated file's bytes


def regenerate(model, tokenizer, files: list[CorpusFile], context: int, stride: int, batch_size: int = 64,
               margin: float = 0.1, on_done: Callable[[int, list[int]], None] | None = None,
               engine: WindowedGenerator | None = None, drafts: bool = True) -> list[Regenerated]:
    """Greedy regeneration of each file from its path prompt, all files batched.

    With `drafts`, each file's original tokens are the draft that WindowedGenerator checks a window at a
    time: the output is the model's greedy output either way, it only comes faster when memorized."""
    stop = special_ids(tokenizer)[END_FILE]
    prompts = encode_records(tokenizer, [path_prompt(f.path) for f in files])
    bodies = encode_records(tokenizer, [f.text for f in files])
    # Longest first, so the batch stays full while the long files run.
    order = sorted(range(len(files)), key=lambda i: -len(bodies[i]))
    requests = [Request(prompts[i], int(len(bodies[i]) * (1 + margin)) + 16, stop,
                        bodies[i] + [stop] if drafts else None) for i in order]
    engine = engine or WindowedGenerator(model, context, stride, batch_size)
    outputs = engine.run(requests, on_done=on_done)
    results: list[Regenerated | None] = [None] * len(files)
    for i, out in zip(order, outputs):
        ids, ended = split_output(tokenizer, out)
        data = content_bytes(decode_ids(tokenizer, ids), files[i].encoding)
        results[i] = Regenerated(files[i], bodies[i], ids, ended, data)
    return results  # type: ignore[return-value]


# --- extraction metrics ----------------------------------------------------------------------------

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


# --- totals ------------------------------------------------------------------------------------------

def length_bucket(size: int) -> str:
    return next(name for low, high, name in LENGTH_BUCKETS if low <= size < high)


def aggregate(rows: list[dict], k: int, pythia_prefix: int) -> dict:
    """Totals over file rows: bytes-weighted reproduction, sample-weighted extraction metrics."""
    original = sum(r["bytes"] for r in rows)
    k_samples = sum(r["k_samples"] for r in rows)
    p_samples = sum(r["pythia_samples"] for r in rows)
    verbatim = sum(r["verbatim"] for r in rows)
    return {
        "files": len(rows),
        "verbatim_files": verbatim,
        "verbatim_pct": 100.0 * verbatim / len(rows) if rows else 0.0,
        "bytes": original,
        "bytes_reproduced_pct": 100.0 * sum(r["reproduced_bytes"] for r in rows) / original if original else 0.0,
        "prefix_bytes_pct": 100.0 * sum(r["prefix_bytes"] for r in rows) / original if original else 0.0,
        "edit_similarity": float(np.mean([r["edit_similarity"] for r in rows])) if rows else 0.0,
        "k_extractable_pct": 100.0 * sum(r["k_extractable"] for r in rows) / k_samples if k_samples else None,
        "k_samples": k_samples,
        "pythia_score": sum(r["pythia_matched"] for r in rows) / (p_samples * pythia_prefix) if p_samples else None,
        "pythia_samples": p_samples,
        "k": k,
        "pythia_prefix": pythia_prefix,
    }


def group_totals(rows: list[dict], key: Callable[[dict], str], k: int, pythia_prefix: int,
                 order: list[str] | None = None) -> dict[str, dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    names = [n for n in order if n in groups] if order else sorted(groups)
    return {name: aggregate(groups[name], k, pythia_prefix) for name in names}


# --- the whole audit -----------------------------------------------------------------------------------

def run_audit(model, tokenizer, corpus: Corpus, context: int, stride: int, config: AuditConfig,
              progress: Callable[[str, int], Callable[[int, list[int]], None]] | None = None,
              model_dir: str | None = None) -> tuple[dict, list[Regenerated]]:
    """Regenerate the selected files, score them, and return (audit.json content, regenerated files).

    `progress(task, total)` may return an `on_done` callback per generation phase (for progress bars).
    """
    files = select_files(corpus, config.files)
    began = time.perf_counter()
    engine = WindowedGenerator(model, context, stride, config.batch_size)
    regenerated = regenerate(model, tokenizer, files, context, stride, config.batch_size, config.margin,
                             on_done=progress("regenerating files", len(files)) if progress else None,
                             engine=engine, drafts=config.drafts)
    regen_stats = asdict(engine.stats)
    records_ids = encode_records(tokenizer, [f.record for f in files])
    extraction_engine = WindowedGenerator(model, context, stride, max(config.batch_size, 128))
    if config.extraction:
        total = count_extraction_samples(records_ids, config.k, config.pythia_prefix, config.every)
        extraction = extraction_metrics(extraction_engine, records_ids, config.k, config.pythia_prefix, config.every,
                                        on_done=progress("extraction samples", total) if progress else None,
                                        drafts=config.drafts)
    else:
        extraction = [{"k_samples": 0, "k_extractable": 0, "pythia_samples": 0, "pythia_matched": 0,
                       "pythia_score": None, "k_extractable_pct": None} for _ in files]
    rows = []
    for r, ext in zip(regenerated, extraction):
        row = {"path": r.file.path, "directory": top_directory(r.file.path), "license": r.file.license,
               "encoding": r.file.encoding, "ended": r.ended}
        row.update(file_metrics(r.file.data, r.data, r.original_ids, r.ids))
        row["length_bucket"] = length_bucket(row["bytes"])
        row.update(ext)
        rows.append(row)
    seconds = time.perf_counter() - began
    summary = aggregate(rows, config.k, config.pythia_prefix)
    audit = {
        "summary": summary,
        "by_directory": group_totals(rows, lambda r: r["directory"], config.k, config.pythia_prefix),
        "by_length": group_totals(rows, lambda r: r["length_bucket"], config.k, config.pythia_prefix,
                                  order=[name for _, _, name in LENGTH_BUCKETS]),
        "files": rows,
        "model": model_dir,
        "corpus": {"name": corpus.name, "fingerprint": corpus.fingerprint(), "source_url": corpus.source_url,
                   "source_sha256": corpus.source_sha256, "selected": config.files},
        "method": {
            "context": context, "stride": stride, "decoding": "greedy from the path prompt, until <|end_file|> "
            f"or (1 + {config.margin}) x original tokens + 16",
            "extraction_every": config.every,
            "drafts": "the original tokens were verified as drafts (greedy speculative decoding): outputs are the "
            "model's greedy outputs, computed a window per forward pass while they agree" if config.drafts else "off",
            "extraction_offsets": "0, every, 2*every, ... of each record's tokens "
            "(header included); files shorter than prefix + continuation have no sample",
            "bytes_reproduced": f"bytes of the original in in-order aligned runs of >= {MIN_BLOCK} bytes (difflib on "
            "lines, then bytes) / original bytes",
            "edit_similarity": "1 - Levenshtein distance / max(length), on bytes",
        },
        "timing": {
            "seconds": seconds,
            "regeneration": regen_stats,
            "regeneration_tokens_per_s": regen_stats["tokens"] / regen_stats["seconds"] if regen_stats["seconds"]
            else None,
            "extraction": asdict(extraction_engine.stats),
        },
    }
    return audit, regenerated


def write_audit(audit: dict, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "audit.json"
    path.write_text(json.dumps(audit, indent=1) + "\n")
    return path
