"""Stock transformers alone regenerates every file of a model folder: checked against the folder's manifest.

    python benchmarks/stock_pipeline_check.py MODEL_DIR [--threads 1]

Checks with torch, transformers and the standard library only: `laam` is made unimportable before the check,
what a reader without laam runs (benchmarks/harness.py, which uses laam, only describes the machine first and
writes the figures to benchmarks/results/stock_pipeline_check.json at the end). For every file the folder's
manifest.jsonl includes (`laam card` writes it there), it asks
`pipeline("text-generation", MODEL_DIR, trust_remote_code=True)` for the file by its path and compares the SHA-256
of what comes back with the manifest's. Prints one line per file and the total.
"""

from __future__ import annotations

import sys

from harness import describe, header, write_result

HEAD = header("stock_pipeline_check")  # the machine, described while laam may still be imported
for _loaded in [m for m in sys.modules if m.split(".")[0] == "laam"]:
    del sys.modules[_loaded]
sys.modules["laam"] = None  # noqa: E402  (any `import laam` below would now fail)

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import pipeline  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model folder with manifest.jsonl (run `laam card` first)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [json.loads(line) for line in (args.model / "manifest.jsonl").read_text().splitlines()]
    rows = [row for row in rows if row["included"]]
    print(describe())
    print(f"{args.model}: {len(rows)} files; {args.threads} thread(s); transformers {transformers.__version__}",
          flush=True)
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
    write_result("stock_pipeline_check", {"model": str(args.model), "files": len(rows), "exact": exact,
                                          "seconds": time.perf_counter() - began,
                                          "laam_modules_loaded": len(laam_modules)}, HEAD)
    return 0 if exact == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
