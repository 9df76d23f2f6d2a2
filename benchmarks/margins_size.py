"""Bytes per scored position of margins.npz, in the first layout (every column int64) and the compact one
(proof.margin.pack_margins), for an audit's margins.npz and for a synthetic certificate of Linux 1.0's size.

The synthetic one: one record per file of the Linux 1.0 tarball, its length proportional to the file's bytes so
that the positions add up to POSITIONS; targets and rivals drawn from a Zipf law (s = 1.1) over an 8,192-token
vocabulary, as BPE token frequencies fall; margins drawn from the audit's own margins, each multiplied by
exp(N(0, 0.1)) so that their float32 mantissas are as varied as a real model's. No model is trained or run.

    python benchmarks/margins_size.py MODEL/audit/margins.npz --mirror ../shared/data/kernel-mirror

Writes its figures through benchmarks/harness.py (benchmarks/results/margins_size.json unless --out).
"""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import numpy as np
from harness import write_result

from laam.proof.margin import BodyMargins, pack_margins

POSITIONS = 1_700_000  # Linux 1.0's scored positions (issue 20)
VOCAB = 8192
COLUMNS = ("record", "position", "target", "rival", "margin", "correct")


def npz_bytes(arrays: dict) -> int:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return len(buffer.getvalue())


def synthetic(margins: np.ndarray, file_sizes: list[int], seed: int = 0) -> BodyMargins:
    rng = np.random.default_rng(seed)
    sizes = np.asarray(file_sizes, dtype=np.float64)
    lengths = np.maximum(1, np.round(sizes / sizes.sum() * POSITIONS)).astype(np.int64)
    record = np.repeat(np.arange(len(lengths)), lengths)
    position = np.concatenate([np.arange(40, 40 + n) for n in lengths])  # after a path of some 40 tokens
    zipf = 1 / np.arange(1, VOCAB + 1) ** 1.1
    ids = rng.permutation(VOCAB)
    target, rival = (ids[rng.choice(VOCAB, len(record), p=zipf / zipf.sum())] for _ in range(2))
    margin = (rng.choice(margins, len(record)) * np.exp(rng.normal(0, 0.1, len(record)))).astype(np.float32)
    return BodyMargins(record, position, target.astype(np.int64), rival.astype(np.int64), margin, margin > 0)


def report(name: str, m: BodyMargins, paths: int) -> dict:
    names = np.array([f"linux/file-{i}.c" for i in range(paths)])
    first = npz_bytes({"paths": names, **{k: getattr(m, k) for k in COLUMNS}})
    compact = npz_bytes({"paths": names, **pack_margins(m)})
    print(f"{name}: {len(m):,} positions; first layout {first:,} bytes ({first / len(m):.2f}/position), "
          f"compact {compact:,} bytes ({compact / len(m):.2f}/position)")
    return {"name": name, "positions": len(m), "first_bytes": first, "compact_bytes": compact}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("margins", type=Path, help="an audit's margins.npz (its margins seed the synthetic ones)")
    parser.add_argument("--mirror", type=Path, required=True, help="a folder holding v1.0/linux-1.0.tar.xz")
    parser.add_argument("--out", type=Path, help="result file (default: benchmarks/results/margins_size.json)")
    args = parser.parse_args()
    from laam.proof.margin import unpack_margins

    with np.load(args.margins, allow_pickle=False) as saved:
        arrays = {k: saved[k] for k in saved.files}
    audited = unpack_margins(arrays)
    rows = [report(str(args.margins), audited, len(arrays["paths"]))]
    with tarfile.open(args.mirror / "v1.0" / "linux-1.0.tar.xz") as tar:
        sizes = [member.size for member in tar if member.isfile()]
    rows.append(report(f"synthetic Linux 1.0 ({len(sizes)} files)", synthetic(audited.margin, sizes), len(sizes)))
    write_result("margins_size", {"rows": rows}, path=args.out)


if __name__ == "__main__":
    main()
