"""How much of a file came back, measured on the bytes themselves: exact prefix, in-order aligned runs,
edit similarity, longest verbatim span."""

from __future__ import annotations

import numpy as np


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
