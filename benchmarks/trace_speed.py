"""`laam trace` speed: the fast parse against searching every position, and time against text size, in one process.

The index is Linux 1.0's (the default corpus, read from the kernel mirror). Texts of three kinds are traced:
- `mixed`: Python's standard library source (code unlike the kernel's) with one kernel file in ten pieces;
- `shuffled-lines`: the kernel's own lines in a random order (many matches just short of --min-length);
- `files`: kernel files back to back (nearly all of it one span after another).
For each kind and size the fast parse is timed; searching every position (`TraceIndex.trace(exhaustive=True)`)
is timed on the first `--old-bytes` of the text only (it costs a binary search per byte) and both give the same
spans there, which the script checks. With --old-rev REV, laam/proof/trace.py as it was at git revision REV is
loaded beside the current one and timed on the same first `--old-bytes` (its index built from the same corpus):
the code before this parse, as users ran it. Figures go through benchmarks/harness.py (results/trace_speed.json
unless --json).

    PYTHONPATH=. python benchmarks/trace_speed.py --sizes 1,5,50 --old-rev 844cf4e \
        --json benchmarks/results/trace_speed.json
"""

from __future__ import annotations

import argparse
import importlib.util
import random
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from harness import ROOT, describe, header, tarball, write_result

from laam.data.corpus import CorpusConfig, load_corpus
from laam.proof.trace import TraceIndex

MB = 1 << 20


def texts(corpus, size: int, seed: int) -> dict[str, bytes]:
    rng = random.Random(seed)
    files = [f.data for f in corpus.files]
    stdlib = b"".join(p.read_bytes() for p in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")))
    mixed, at = [], 0
    while at < size:
        if rng.random() < 0.1:
            piece = rng.choice(files)
        else:
            start = rng.randrange(len(stdlib) - 20000)
            piece = stdlib[start:start + rng.randrange(2000, 20000)]
        mixed.append(piece)
        at += len(piece)
    lines = [line for f in files for line in f.splitlines(keepends=True)]
    shuffled, whole = [], []
    while sum(map(len, shuffled)) < size:
        rng.shuffle(lines)
        shuffled.append(b"".join(lines))
    while sum(map(len, whole)) < size:
        whole.append(b"".join(rng.sample(files, len(files))))
    return {"mixed": b"".join(mixed)[:size], "shuffled-lines": b"".join(shuffled)[:size],
            "files": b"".join(whole)[:size]}


def old_index(rev: str, corpus):
    """TraceIndex as laam/proof/trace.py defined it at git revision `rev`, built over `corpus`."""
    source = subprocess.run(["git", "show", f"{rev}:laam/proof/trace.py"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as handle:
        handle.write(source)
    spec = importlib.util.spec_from_file_location("old_trace", handle.name)
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_trace"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    Path(handle.name).unlink()
    return module.TraceIndex.build(corpus)


def timed(call, *args, **kwargs) -> tuple[float, object]:
    began = time.perf_counter()
    result = call(*args, **kwargs)
    return time.perf_counter() - began, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", default=None, help="kernel tarball or folder to index (default: Linux 1.0 in "
                        "the kernel mirror)")
    parser.add_argument("--sizes", default="1,5,50", help="text sizes in MiB, comma-separated")
    parser.add_argument("--old-bytes", type=int, default=200_000, help="bytes searched at every position")
    parser.add_argument("--min-length", type=int, default=80)
    parser.add_argument("--old-rev", help="also time laam/proof/trace.py of this git revision on --old-bytes")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    started = header("trace_speed")
    print(describe(), flush=True)
    corpus = load_corpus(CorpusConfig(source=args.source or str(tarball())), progress=False)
    build_s, index = timed(TraceIndex.build, corpus)
    print(f"index of {corpus.name}: {len(index.data):,} bytes, built in {build_s:.2f} s", flush=True)
    old = old_index(args.old_rev, corpus) if args.old_rev else None
    rows = []
    for size in (int(float(s) * MB) for s in args.sizes.split(",")):
        for kind, text in texts(corpus, size, seed=size).items():
            new_s, spans = timed(index.trace, text, args.min_length)
            head = text[:args.old_bytes]
            old_s, old_spans = timed(index.trace, head, args.min_length, exhaustive=True)
            same = old_spans == index.trace(head, args.min_length)
            row = {"kind": kind, "bytes": len(text), "new_seconds": round(new_s, 3),
                   "new_mb_per_s": round(len(text) / MB / new_s, 3), "spans": len(spans),
                   "copied_bytes": sum(s.length for s in spans), "old_bytes": len(head),
                   "old_seconds": round(old_s, 3), "old_seconds_projected": round(old_s * len(text) / len(head), 1),
                   "speedup": round(old_s * len(text) / len(head) / new_s, 1), "same_spans_on_old_bytes": same}
            rows.append(row)
            print(f"{kind:15s} {len(text) / MB:6.1f} MiB: {new_s:7.2f} s ({row['new_mb_per_s']:.2f} MiB/s, "
                  f"{len(spans)} spans); every position: {old_s:.2f} s for {len(head):,} bytes, "
                  f"{row['old_seconds_projected']:.0f} s projected, {row['speedup']:.0f}x; same spans: {same}",
                  flush=True)
            if old is not None:
                rev_s, rev_spans = timed(old.trace, head, args.min_length)
                row.update(old_rev=args.old_rev, old_rev_seconds=round(rev_s, 3),
                           old_rev_same_spans=[s.__dict__ for s in rev_spans] == [s.__dict__ for s in old_spans])
                print(f"{'':15s} {args.old_rev}'s code: {rev_s:.2f} s for {len(head):,} bytes; same spans: "
                      f"{row['old_rev_same_spans']}", flush=True)
            if not same:
                raise SystemExit(f"the fast parse differs from searching every position on {kind}")
    write_result("trace_speed", {"corpus": corpus.name, "corpus_bytes": len(index.data),
                                 "index_build_seconds": round(build_s, 3), "min_length": args.min_length,
                                 "rows": rows}, started, args.json)


if __name__ == "__main__":
    main()
