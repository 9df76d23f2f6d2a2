"""Trace any text back to the training corpus: the longest spans it shares verbatim, with file, lines and license.

A suffix array (pydivsufsort) over the corpus bytes, files joined by NUL separators, is built once
per corpus and cached beside the corpus manifest, keyed by the corpus fingerprint. A query is parsed
left to right into maximal corpus matches (like an LZ77 parse against the corpus): at each position
the longest prefix of the remaining text that occurs in the corpus is found by binary search over the
suffix array; a match of at least `min_length` bytes is reported and skipped over, otherwise the parse
moves on by one byte. The binary search is hand-written because no library searches a pydivsufsort
array; comparisons are bytes slices, so each step is one memcmp.

Searching every position costs a binary search per byte (a 5 MB text took minutes). A match of l bytes at
position q means the text from p < q can match at most l + (q - p) bytes, so one search at the last position
of a `min_length` window rules out the window's last `min_length - l` starts, and the parse looks at the
rightmost start not yet ruled out until none is left or one is found (then it looks left of it for an earlier
one). Text unlike the corpus costs a search or two per `min_length` bytes, and the spans are exactly the ones
searching every position gives (a test compares the two).
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from laam.data.corpus import Corpus
from laam.errors import LaamError
from laam.io import atomic_folder, discard_damaged, seal, seal_fault
from laam.progress import task_bar

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
        self._starts, self._ends = self.starts.tolist(), self.ends.tolist()  # for bisect, one lookup at a time

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
        n = _common_prefix(self.data[s:s + len(pattern)], pattern)
        if n == 0:
            return 0
        end = self._ends[bisect.bisect_right(self._starts, s) - 1]
        return min(n, end - s)  # never across a file boundary

    def longest_match(self, query: bytes, at: int, limit: int | None = None) -> tuple[int, int]:
        """(length, suffix-array rank) of the longest prefix of query[at:] found in the corpus; with a `limit`,
        a length of `limit` or more may be returned as any length from `limit` up (one search, no longer)."""
        cap = 64 if limit is None else max(64, limit)
        while True:
            pattern = query[at:at + cap]
            rank = self._lower_bound(pattern)
            best, best_rank = 0, rank
            for r in (rank - 1, rank):
                if 0 <= r < len(self.sa):
                    n = self._common(r, pattern)
                    if n > best:
                        best, best_rank = n, r
            if best == len(pattern) == cap and at + cap < len(query) and limit is None:
                cap *= 8  # the whole probe matched: search again with a longer one
                continue
            return best, best_rank

    def occurrences(self, pattern: bytes) -> np.ndarray:
        """Corpus byte offsets where `pattern` occurs."""
        lo, hi = self._lower_bound(pattern), self._lower_bound(pattern, upper=True)
        return np.sort(np.asarray(self.sa[lo:hi]))

    def file_of(self, offset: int) -> int:
        return int(np.searchsorted(self.starts, offset, side="right") - 1)

    def _first_start(self, query: bytes, at: int, end: int, min_length: int, match) -> int | None:
        """The first position in [at, end] where a match of at least `min_length` bytes starts, or None.

        A match at p of length l means query[p+1:p+l] occurs too, so match(p) <= match(q) + (q - p) for p < q:
        a match of l < min_length bytes at q rules out every start in (q + l - min_length, q]. The search
        looks at the last position not yet ruled out, from the right, until all are ruled out or one starts a
        long enough match; then it looks again left of that one, for an earlier one."""
        found = None
        while at <= end:
            length = match(end)
            if length >= min_length:
                found, end = end, end - 1  # a start; an earlier one may lie in [at, end - 1]
            else:
                end = end + length - min_length  # every start in (end + length - min_length, end] is ruled out
        return found

    def trace(self, query: bytes, min_length: int = 80, exhaustive: bool = False,
              on_progress: Callable[[int], None] | None = None) -> list[Span]:
        """Maximal verbatim corpus matches of at least `min_length` bytes, left to right, not overlapping.

        exhaustive=True searches every position (the reference the fast parse is tested against; also used
        for a text holding a NUL byte, where a match may not be found whole across the files' separators, so
        the bound the fast parse relies on may not hold); on_progress(bytes parsed) is called every 64 KiB."""
        if min_length < 1:
            raise LaamError(f"--min-length must be at least 1, got {min_length}")
        exhaustive = exhaustive or SEPARATOR in query
        newlines = np.flatnonzero(np.frombuffer(query, np.uint8) == ord("\n"))
        lengths: dict[int, int] = {}

        def match(p: int) -> int:  # exact below min_length; at least min_length otherwise
            if p not in lengths:
                lengths[p] = self.longest_match(query, p, min_length)[0]
            return lengths[p]

        spans, at, reported = [], 0, 0
        while at < len(query):
            if at - reported >= 1 << 16:
                reported = at
                lengths = {p: n for p, n in lengths.items() if p >= at}  # what lies behind is never asked again
                if on_progress is not None:
                    on_progress(at)
            if exhaustive:
                if match(at) < min_length:
                    at += 1
                    continue
            else:
                if at + min_length > len(query):
                    break  # no match of min_length fits any more
                # right after a span the next one often starts at once (copied files back to back): look there first
                start = at if spans and at == spans[-1].start + spans[-1].length and match(at) >= min_length \
                    else self._first_start(query, at, at + min_length - 1, min_length, match)
                if start is None:
                    at += min_length  # no match starts anywhere in [at, at + min_length)
                    continue
                at = start
            length = self.longest_match(query, at)[0]
            found = self.occurrences(query[at:at + length])
            found_files = np.unique(np.searchsorted(self.starts, found, side="right") - 1)
            offset = int(found[0])
            f = self.file_of(offset)
            begin = int(self.starts[f])
            spans.append(Span(
                start=at, length=length, lines=_lines(query, at, length, newlines=newlines), path=self.paths[f],
                source_lines=_lines(self.data, offset, length, begin), source_offset=offset - begin,
                license=self.licenses[f], files=len(found_files), occurrences=len(found)))
            at += length
        if on_progress is not None:
            on_progress(len(query))
        return spans


def _common_prefix(a: bytes, b: bytes) -> int:
    """Length of the common prefix of two byte strings, by binary search on slice equality (each one memcmp;
    faster than numpy for the short slices a search compares)."""
    lo, hi = 0, min(len(a), len(b))
    if a[:hi] == b[:hi]:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _lines(data: bytes, start: int, length: int, begin: int = 0, newlines: np.ndarray | None = None) -> tuple[int, int]:
    """1-based first and last line of data[start:start + length] (counted from `begin`); a span that starts
    with the newline ending the previous line is said to start on the next line. `newlines`: the sorted offsets
    of data's newlines, for a long text with many spans (counting from its start for each would be quadratic)."""
    if newlines is None:
        def count(a: int, b: int) -> int:
            return data.count(b"\n", a, b)
    else:
        def count(a: int, b: int) -> int:
            return int(np.searchsorted(newlines, b) - np.searchsorted(newlines, a))
    first = count(begin, start) + 1 + (data[start:start + 1] == b"\n" and length > 1)
    last = count(begin, start + length - 1) + 1
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


def trace_text(index: TraceIndex, query: bytes, min_length: int = 80, progress: bool = True) -> list[Span]:
    """index.trace with a progress bar over the text's bytes (`laam trace`)."""
    with task_bar(progress, "bytes") as bar:
        task = bar.add_task("trace", total=len(query))
        return index.trace(query, min_length, on_progress=lambda at: bar.update(task, completed=at))


def spans_to_json(spans: list[Span], query: bytes) -> dict:
    covered = sum(s.length for s in spans)
    return {"bytes": len(query), "copied_bytes": covered,
            "copied_pct": 100.0 * covered / len(query) if query else 0.0,
            "spans": [asdict(s) for s in spans]}
