"""Stock transformers alone regenerates every file of a model folder: checked against the folder's manifest.

    python benchmarks/stock_pipeline_check.py MODEL_DIR [--threads 1]

Imports torch, transformers and the standard library only, and makes `laam` unimportable first: what a reader
without laam runs. For every file the folder's manifest.jsonl includes (`laam card` writes it there), it asks
`pipeline("text-generation", MODEL_DIR, trust_remote_code=True)` for the file by its path and compares the SHA-256
of what comes back with the manifest's. Prints one line per file and the total.
"""

from __future__ import annotations

import sys

sys.modules["laam"] = None  # noqa: E402  (any `import laam` below would now fail)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import pipeline  # noqa: E402


def cpu_name() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model folder with manifest.jsonl (run `laam card` first)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in (args.model / "manifest.jsonl").read_text().splitlines()]
    rows = [row for row in rows if row["included"]]
    print(f"{args.model}: {len(rows)} files; {cpu_name()}, {args.threads} thread(s); torch {torch.__version__}, "
          f"transformers {transformers.__version__}", flush=True)
    generate = pipeline("text-generation", str(args.model), trust_remote_code=True)
    exact, began = 0, time.perf_counter()
    for row in rows:
        start = time.perf_counter()
        text = generate(row["path"], return_full_text=False)[0]["generated_text"]
        data = text.encode(row.get("encoding", "utf-8"), errors="surrogateescape")
        same = hashlib.sha256(data).hexdigest() == row["sha256"]
        exact += same
        print(f"  {'exact ' if same else 'DIFFERS'} {row['path']}: {len(data):,} of {row['size']:,} bytes, "
              f"{time.perf_counter() - start:.1f} s", flush=True)
    laam_modules = [m for m, v in sys.modules.items() if m.split(".")[0] == "laam" and v is not None]
    print(f"{exact}/{len(rows)} files byte-exact (SHA-256 as in manifest.jsonl) in {time.perf_counter() - began:.1f} s;"
          f" laam modules loaded: {len(laam_modules)}")
    return 0 if exact == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
