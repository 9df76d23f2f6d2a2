"""Benchmark: a whole modern kernel in bounded memory (goal: each step at most 4 GB peak RSS).

Each step runs in its own process; its time and peak RSS (ru_maxrss from os.wait4 on that process) are
printed side by side:

- `tokenizer`: the CLI itself, `laam tokenizer train SOURCE` on the whole tree (read the tarball, BPE,
  count tokens, save, round-trip every record);
- `tokens`: corpus -> token cache (`laam.data.tokens.build_token_cache`, what `laam train` builds first);
- `encode-baseline` / `encode-streamed`: on a subtree (`--subtree`), every record encoded by one
  `encode_batch` call (how LaaM counted tokens before: ≈100 bytes of Encoding per token, so a whole
  modern tree needs tens of GB) against `iter_token_ids` (bounded batches) — the baseline, side by side;
- `fingerprint` (with `--folder`): the tarball and its unpacked folder give the same corpus fingerprint.

Get the tree (Debian's package; any linux-source-* works):

    apt-get download linux-source-6.12 && dpkg -x linux-source-6.12_*.deb deb
    mv deb/usr/src/linux-source-6.12.tar.xz /work/data/ && tar -C /work/data -xJf /work/data/linux-source-6.12.tar.xz
    PYTHONPATH=. nice python benchmarks/modern_kernel.py --source /work/data/linux-source-6.12.tar.xz \\
        --folder /work/data/linux-source-6.12 --work /tmp/laam-modern
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from harness import ROOT, describe, header, write_result

GOAL_BYTES = 4 * 1024**3

# Steps that are not a CLI command run as a child of this script (`--step NAME`), printing one JSON line.


def _corpus(args, include=()):
    from laam.data.corpus import CorpusConfig, load_corpus

    return load_corpus(CorpusConfig(source=args.source, cache=Path(args.work) / "cache", include=tuple(include)),
                       progress=False)


def step_tokens(args) -> dict:
    from laam.data.tokenizer import load_tokenizer
    from laam.data.tokens import build_token_cache

    corpus = _corpus(args)
    tokenizer_dir = Path(args.work) / "tokenizer"
    cache = build_token_cache(corpus, load_tokenizer(tokenizer_dir), tokenizer_dir, Path(args.work) / "cache")
    return {"files": len(corpus.files), "tokens": cache.total_tokens,
            "ids_bytes": (cache.folder / "ids.bin").stat().st_size}


def step_encode(args, streamed: bool) -> dict:
    from laam.data.tokenizer import backend, iter_token_ids, load_tokenizer

    corpus = _corpus(args, [args.subtree])
    tokenizer = load_tokenizer(Path(args.work) / "tokenizer")
    start = time.perf_counter()
    if streamed:
        tokens = sum(len(ids) for ids in iter_token_ids(tokenizer, corpus.records()))
    else:  # the code this replaced: all records at once, all Encodings alive until counted
        records = list(corpus.records())
        tokens = sum(len(e.ids) for e in backend(tokenizer).encode_batch(records, add_special_tokens=False))
    return {"files": len(corpus.files), "bytes": sum(len(f.data) for f in corpus.files), "tokens": tokens,
            "encode_s": round(time.perf_counter() - start, 1)}


def step_fingerprint(args) -> dict:
    from laam.data.corpus import CorpusConfig, load_corpus

    prints = {}
    for source in (args.source, args.folder):
        corpus = load_corpus(CorpusConfig(source=source, cache=Path(args.work) / "cache"), progress=False)
        prints[source] = (corpus.fingerprint(), len(corpus.files), corpus.files[0].path)
        del corpus
    return {"fingerprints": prints, "same": len({p[0] for p in prints.values()}) == 1}


STEPS = {"tokens": step_tokens, "encode-baseline": lambda a: step_encode(a, False),
         "encode-streamed": lambda a: step_encode(a, True), "fingerprint": step_fingerprint}


def measure(command: list[str]) -> tuple[float, float, int, int, str]:
    """(wall seconds, CPU seconds, peak RSS in bytes, exit status, stdout) of one child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM",
                                                                                            "true")}
    start = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, env=env, cwd=ROOT, text=True)
    output = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return time.perf_counter() - start, cpu, usage.ru_maxrss * 1024, child.returncode, output


def report(name: str, seconds: float, cpu: float, peak: int, status: int, detail: str) -> None:
    verdict = "ok" if peak <= GOAL_BYTES else "OVER 4 GB"
    print(f"{name:<16} {seconds:7.0f} s wall {cpu:7.0f} s CPU   peak RSS {peak / 1024**3:5.2f} GB ({verdict})   "
          f"exit {status}   {detail}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", required=True, help="a kernel tarball (or folder, or version)")
    parser.add_argument("--folder", help="the same release unpacked, for the fingerprint check")
    parser.add_argument("--work", default="/tmp/laam-modern", help="tokenizer, token cache, corpus cache")
    parser.add_argument("--vocab-size", type=int, default=32768)
    parser.add_argument("--subtree", default="fs/", help="subtree for the encode baseline (default fs/)")
    parser.add_argument("--steps", default="tokenizer,tokens,encode-baseline,encode-streamed,fingerprint")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(STEPS[args.step](args)))
        return
    Path(args.work).mkdir(parents=True, exist_ok=True)
    head = header("modern_kernel")
    print(describe())
    print(f"source {args.source}; goal: every step at most {GOAL_BYTES / 1024**3:.0f} GB peak RSS", flush=True)
    steps = {}
    for name in args.steps.split(","):
        if name == "fingerprint" and not args.folder:
            continue
        if name == "tokenizer":
            command = [sys.executable, "-m", "laam", "tokenizer", "train", args.source, "--vocab-size",
                       str(args.vocab_size), "--out", str(Path(args.work) / "tokenizer"), "--cache",
                       str(Path(args.work) / "cache"), "-q"]
        else:
            command = [sys.executable, __file__, *sys.argv[1:], "--step", name]
        seconds, cpu, peak, status, output = measure(command)
        detail = " ".join(line.strip() for line in output.splitlines() if line.strip())
        report(name, seconds, cpu, peak, status, detail)
        steps[name] = {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_bytes": peak, "exit": status,
                       "detail": detail}
    write_result("modern_kernel", {"source": args.source, "goal_bytes": GOAL_BYTES, "steps": steps}, head)


if __name__ == "__main__":
    main()
