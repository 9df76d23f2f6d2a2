"""Trace any text back to the training corpus: the longest spans it shares verbatim, with file, lines and license.

A suffix array (pydivsufsort) over the corpus bytes, files joined by NUL separators, is built once
per corpus and cached beside the corpus manifest, keyed by the corpus fingerprint. A query is parsed
left to right into maximal corpus matches (like an LZ77 parse against the corpus): at each position
the longest prefix of the remaining text that occurs in the corpus is found by binary search over the
suffix array; a match of at least `min_length` bytes is reported and skipped over, otherwise the parse
moves on by one byte. The binary search is hand-written because no library searches a pydivsufsort
array; comparisons are bytes slices, so each step is one memcmp.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from laam.data.corpus import Corpus
from laam.errors import LaamError
from laam.io import atomic_folder, discard_damaged, seal, seal_fault

SEPARATOR = b"\0"
INDEX_VERSION = 1


@dataclass
class Span:
    """A run of the query that occurs verbatim in the corpus."""

    start: int  # byte offsets in the query
    length: int
    lines: tuple[int, int]  # 1-based, inclusive, in the query
    path: str  # the first corpus file (in corpus order) that contains it
    source_lines: tuple[int, int]
    source_offset: int  # byte offset in that file
    license: str
    files: int  # how many corpus files contain it
    occurrences: int

    def describe(self) -> str:
        others = f"; in {self.files} files" if self.files > 1 else ""
        return (f"lines {_range(self.lines)} of this text copy {self.path} lines {_range(self.source_lines)} "
                f"({self.license}); {self.length:,} bytes{others}")


def _range(lines: tuple[int, int]) -> str:
    return str(lines[0]) if lines[0] == lines[1] else f"{lines[0]}–{lines[1]}"


class TraceIndex:
    def __init__(self, data: bytes, sa: np.ndarray, starts: np.ndarray, paths: list[str], licenses: list[str]):
        self.data, self.sa, self.starts, self.paths, self.licenses = data, sa, starts, paths, licenses
        self.ends = np.append(starts[1:] - 1, len(data))  # exclusive end of each file's bytes (before the NUL)

    # --- building and caching ------------------------------------------------------------------
    @classmethod
    def build(cls, corpus: Corpus) -> TraceIndex:
        from pydivsufsort import divsufsort

        parts, starts, at = [], [], 0
        for f in corpus.files:
            starts.append(at)
            parts.append(f.data)
            at += len(f.data) + 1
        data = SEPARATOR.join(parts)
        sa = divsufsort(np.frombuffer(data, dtype=np.uint8).copy())
        return cls(data, np.asarray(sa), np.array(starts, dtype=np.int64), [f.path for f in corpus.files],
                   [f.license for f in corpus.files])

    def save(self, folder: Path) -> None:
        with atomic_folder(folder, replace=False) as scratch:  # built concurrently by another process: keep theirs
            (scratch / "corpus.bin").write_bytes(self.data)
            np.save(scratch / "sa.npy", self.sa)
            np.save(scratch / "starts.npy", self.starts)
            (scratch / "files.json").write_text(json.dumps({"version": INDEX_VERSION, "paths": self.paths,
                                                            "licenses": self.licenses}))
            seal(scratch, ["corpus.bin", "sa.npy", "starts.npy", "files.json"])

    @classmethod
    def load(cls, folder: Path) -> TraceIndex:
        meta = json.loads((folder / "files.json").read_text())
        if meta.get("version") != INDEX_VERSION:
            raise LaamError(f"trace index {folder} has an old format; delete it to rebuild")
        return cls((folder / "corpus.bin").read_bytes(), np.load(folder / "sa.npy", mmap_mode="r"),
                   np.load(folder / "starts.npy"), meta["paths"], meta["licenses"])

    # --- searching -------------------------------------------------------------------------------
    def _lower_bound(self, pattern: bytes, upper: bool = False) -> int:
        """First suffix-array rank whose suffix is >= pattern (> every suffix starting with it if `upper`)."""
        data, sa, n = self.data, self.sa, len(pattern)
        lo, hi = 0, len(sa)
        while lo < hi:
            mid = (lo + hi) // 2
            s = int(sa[mid])
            head = data[s:s + n]
            if head < pattern or (upper and head == pattern):
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _common(self, rank: int, pattern: bytes) -> int:
        s = int(self.sa[rank])
        a = np.frombuffer(self.data[s:s + len(pattern)], np.uint8)
        b = np.frombuffer(pattern[:len(a)], np.uint8)
        differ = np.flatnonzero(a != b)
        n = int(differ[0]) if len(differ) else len(a)
        end = int(self.ends[np.searchsorted(self.starts, s, side="right") - 1])
        return min(n, end - s)  # never across a file boundary

    def longest_match(self, query: bytes, at: int) -> tuple[int, int]:
        """(length, suffix-array rank) of the longest prefix of query[at:] found in the corpus."""
        cap = 64
        while True:
            pattern = query[at:at + cap]
            rank = self._lower_bound(pattern)
            best, best_rank = 0, rank
            for r in (rank - 1, rank):
                if 0 <= r < len(self.sa):
                    n = self._common(r, pattern)
                    if n > best:
                        best, best_rank = n, r
            if best == len(pattern) == cap and at + cap < len(query):
                cap *= 8  # the whole probe matched: search again with a longer one
                continue
            return best, best_rank

    def occurrences(self, pattern: bytes) -> np.ndarray:
        """Corpus byte offsets where `pattern` occurs."""
        lo, hi = self._lower_bound(pattern), self._lower_bound(pattern, upper=True)
        return np.sort(np.asarray(self.sa[lo:hi]))

    def file_of(self, offset: int) -> int:
        return int(np.searchsorted(self.starts, offset, side="right") - 1)

    def trace(self, query: bytes, min_length: int = 80) -> list[Span]:
        """Maximal verbatim corpus matches of at least `min_length` bytes, left to right, not overlapping."""
        if min_length < 1:
            raise LaamError(f"--min-length must be at least 1, got {min_length}")
        spans, at = [], 0
        while at < len(query):
            length, _ = self.longest_match(query, at)
            if length < min_length:
                at += 1
                continue
            found = self.occurrences(query[at:at + length])
            found_files = np.unique(np.searchsorted(self.starts, found, side="right") - 1)
            offset = int(found[0])
            f = self.file_of(offset)
            begin = int(self.starts[f])
            spans.append(Span(
                start=at, length=length, lines=_lines(query, at, length), path=self.paths[f],
                source_lines=_lines(self.data, offset, length, begin), source_offset=offset - begin,
                license=self.licenses[f], files=len(found_files), occurrences=len(found)))
            at += length
        return spans


def _lines(data: bytes, start: int, length: int, begin: int = 0) -> tuple[int, int]:
    """1-based first and last line of data[start:start + length] (counted from `begin`); a span that starts
    with the newline ending the previous line is said to start on the next line."""
    first = data.count(b"\n", begin, start) + 1 + (data[start:start + 1] == b"\n" and length > 1)
    last = data.count(b"\n", begin, start + length - 1) + 1
    return first, max(first, last)


def index_folder(corpus: Corpus) -> Path:
    return corpus.folder() / f"trace-{corpus.fingerprint()}"


def load_or_build_index(corpus: Corpus) -> tuple[TraceIndex, bool]:
    """The corpus's trace index from its cache folder, built and saved first if missing: (index, built)."""
    folder = index_folder(corpus)
    if folder.exists() and (fault := seal_fault(folder)):
        discard_damaged(folder, "trace index", fault)
    if folder.exists():
        return TraceIndex.load(folder), False
    index = TraceIndex.build(corpus)
    index.save(folder)
    return index, True


def spans_to_json(spans: list[Span], query: bytes) -> dict:
    covered = sum(s.length for s in spans)
    return {"bytes": len(query), "copied_bytes": covered,
            "copied_pct": 100.0 * covered / len(query) if query else 0.0,
            "spans": [asdict(s) for s in spans]}
