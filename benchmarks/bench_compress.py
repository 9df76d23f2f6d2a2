"""Throughput of `laam compress` / `laam decompress` against batch size (files stepped together).

    python benchmarks/bench_compress.py --model MODEL_DIR [--files 'linux/kernel/*'] [--batch-sizes 1,4,16,64]

Each batch size codes the same files, decodes them back and checks every byte; the table gives bytes/s
and tokens/s each way and the coded size. `--source` reads the corpus from another copy of the release
than the one the model folder names (e.g. on another machine).

Then, per batch size, a projection to the model's whole training corpus: a lockstep batch runs as many steps as
its longest file has tokens, so coding takes (steps of the corpus's batches, from its real token counts) x (ms per
step at that many rows, measured on random tokens for --step-positions positions). A projection, not a run: the
measured part above is the run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from harness import describe, header, write_result

from laam.data.corpus import load_corpus, select_files
from laam.engine.lockstep import step_in_lockstep
from laam.model.folder import load_model
from laam.model.info import read_model_info
from laam.proof.compress.coder import compress_files, decompress_container, deterministic, plan_batches, tokenize_files
from laam.proof.compress.container import read_container, write_container


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="model folder")
    parser.add_argument("--files", action="append", help="corpus path glob (repeatable; default: all files)")
    parser.add_argument("--source", help="read the corpus from this tarball/folder instead of the model's source")
    parser.add_argument("--batch-sizes", default="1,4,16", help="comma-separated batch sizes (default 1,4,16)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    parser.add_argument("--step-positions", type=int, default=300,
                        help="positions timed per batch size for the whole-corpus projection (0: no projection)")
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
    projection = project(loaded, load_corpus(config, progress=False).files, args.batch_sizes, args.step_positions)
    write_result("bench_compress", {"model": str(args.model), "rows": rows, "projection": projection}, head, args.json)


def step_ms(loaded, rows: int, positions: int) -> float:
    """Median ms of one lockstep step with `rows` rows (random tokens; the work does not depend on them)."""
    generator = torch.Generator().manual_seed(0)
    header = 8
    tokens = torch.randint(8, loaded.model.config.vocab_size, (rows, header + positions), generator=generator)
    stamps = []

    def choose(p, chosen, probs):
        stamps.append(time.perf_counter())
        return tokens[chosen, p].numpy()

    with deterministic():
        step_in_lockstep(loaded.model, tokens, [header] * rows, [header + positions] * rows, loaded.policy, choose)
    return 1e3 * statistics.median(b - a for a, b in zip(stamps, stamps[1:]))


def project(loaded, corpus_files, batch_sizes: str, positions: int) -> list[dict]:
    """Projected coding minutes of the whole training corpus per batch size (see the module docstring)."""
    if positions <= 0:
        return []
    counts = [len(ids) for ids in tokenize_files(loaded, corpus_files)]
    print(f"projection to the whole corpus ({len(counts)} files, {sum(counts):,} tokens):")
    out = []
    for batch_size in (int(b) for b in batch_sizes.split(",")):
        steps = sum(max(counts[i] for i in members) for members in plan_batches(counts, batch_size))
        ms = step_ms(loaded, batch_size, positions)
        out.append({"batch_size": batch_size, "ms_per_step": ms, "corpus_steps": steps,
                    "projected_minutes": steps * ms / 60e3, "files": len(counts), "tokens": sum(counts)})
        print(f"  batch {batch_size:>4}: {ms:6.1f} ms/step x {steps:,} steps = {steps * ms / 60e3:5.1f} min each way")
    return out


if __name__ == "__main__":
    main()
