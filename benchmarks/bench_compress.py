"""Throughput of `laam compress` / `laam decompress` against batch size (files stepped together).

    python benchmarks/bench_compress.py --model MODEL_DIR [--files 'linux/kernel/*'] [--batch-sizes 1,4,16,64]

Each batch size codes the same files, decodes them back and checks every byte; the table gives bytes/s
and tokens/s each way and the coded size. `--source` reads the corpus from another copy of the release
than the one the model folder names (e.g. on another machine).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from harness import describe, header, write_result

from laam.data.corpus import load_corpus, select_files
from laam.model.folder import load_model
from laam.model.info import read_model_info
from laam.proof.compress.coder import compress_files, decompress_container
from laam.proof.compress.container import read_container, write_container


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder")
    parser.add_argument("--files", action="append", help="corpus path glob (repeatable; default: all files)")
    parser.add_argument("--source", help="read the corpus from this tarball/folder instead of the model's source")
    parser.add_argument("--batch-sizes", default="1,4,16", help="comma-separated batch sizes (default 1,4,16)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--json", type=Path, help="write the figures here (default: results/bench_compress.json)")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    head = header("bench_compress")
    print(describe())
    info = read_model_info(args.model)
    config = info.corpus_config()
    if args.source:
        config = type(config)(**{**config.__dict__, "source": args.source})
    files = select_files(load_corpus(config, progress=False).files, args.files)
    loaded = load_model(args.model, args.device)
    size = sum(len(f.data) for f in files)
    print(f"{len(files)} files, {size:,} bytes; model {args.model} on {loaded.device}, {torch.get_num_threads()} "
          f"threads; context {loaded.policy.context}, stride {loaded.policy.stride}")
    print(f"{'batch':>5} {'tokens':>8} {'compress B/s':>13} {'tok/s':>8} {'decompress B/s':>15} {'tok/s':>8} "
          f"{'archive B':>10} {'exact':>7}")
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for batch_size in (int(b) for b in args.batch_sizes.split(",")):
            container, stats = compress_files(loaded, files, batch_size)
            archive = Path(scratch) / f"b{batch_size}.laamz"
            written = write_container(container, archive)
            started = time.perf_counter()
            expected = {f.path: f.data for f in files}
            exact = sum(d.ok and d.data == expected[d.path]
                        for d in decompress_container(loaded, read_container(archive), verify=True))
            decode_seconds = time.perf_counter() - started
            row = {"batch_size": batch_size, "coded_tokens": stats.coded_tokens, "bytes": size,
                   "compress_seconds": stats.seconds, "decompress_seconds": decode_seconds,
                   "archive_bytes": written.total, "exact_files": exact, "files": len(files),
                   "device": loaded.device, "threads": torch.get_num_threads()}
            rows.append(row)
            print(f"{batch_size:>5} {stats.coded_tokens:>8,} {size / stats.seconds:>13,.0f} "
                  f"{stats.coded_tokens / stats.seconds:>8,.0f} {size / decode_seconds:>15,.0f} "
                  f"{stats.coded_tokens / decode_seconds:>8,.0f} {written.total:>10,} {exact:>3}/{len(files)}")
    write_result("bench_compress", {"model": str(args.model), "rows": rows}, head, args.json)


if __name__ == "__main__":
    main()
