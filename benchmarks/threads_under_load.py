"""Benchmark 4: training throughput with the default thread setting, on a quiet machine and beside one other
CPU-bound process that this script starts itself (`python -c "while True: pass"`).

Each measurement is a fresh `laam train --preset demo --max-steps N` (linux/lib/, batch 4 x 256, no checks),
read back from its metrics.jsonl: input tokens per second of training steps after the first step. The
settings, side by side:

- quiet, 1 thread (`--threads 1`): the reference the goal is stated against;
- quiet / loaded, default (`--threads 0`: laam.train.threads picks 1 or all CPUs from measured step times);
- quiet / loaded, all CPUs pinned (`--threads N`: the default before the tuner; libgomp's threads spin and
  collapse beside another process);
- loaded, 1 thread.

Goal: loaded-default keeps >= 50% of quiet-1-thread. "Quiet" means nothing else the script knows of: run it
on an otherwise idle machine (the load average printed at the start says how idle it was).

    PYTHONPATH=. python benchmarks/threads_under_load.py --steps 300
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import describe, header, mirror, read_run, train, write_result


def measure(args, threads: int, loaded: bool, name: str) -> dict:
    out = Path(args.work) / name
    settings = {"source": "1.0", "mirror": args.mirror, "cache": Path(args.work) / "cache", "preset": args.preset,
                "out": out, "overwrite": True, "max_steps": args.steps, "until_memorized": False, "eval_every": 0,
                "save_every": 0, "log_every": 1, "verify": False, "threads": threads, "q": True}
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if loaded else None
    try:
        train(settings, env=env, what=name)
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    rows = read_run(out).steps
    first, last = rows[0], rows[-1]
    seconds = last["train_seconds"] - first["train_seconds"]
    used = [r.get("threads") for r in rows[1:]]
    return {"tokens_per_s": (last["tokens"] - first["tokens"]) / seconds, "seconds": seconds,
            "steps": last["step"] - first["step"], "threads": {t: used.count(t) for t in sorted(set(used))}}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300, help="training steps per measurement")
    parser.add_argument("--preset", default="demo", help="recipe whose model and batch are timed")
    parser.add_argument("--mirror", default=None, help="kernel mirror (default: $LAAM_MIRROR or ../shared/...)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "laam-bench-threads"))
    parser.add_argument("--only", default="", help="comma-separated subset of the measurements, by name")
    args = parser.parse_args()
    args.mirror = mirror(args.mirror)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:
        cpus = os.cpu_count() or 1
    head = header("threads_under_load")
    print(describe())
    print(f"preset {args.preset}, {args.steps} steps per measurement; 'loaded' = one `while True: pass` process")
    plan = [("quiet-1-thread", 1, False), ("quiet-default", 0, False), (f"quiet-{cpus}-threads-pinned", cpus, False),
            ("loaded-default", 0, True), ("loaded-1-thread", 1, True), (f"loaded-{cpus}-threads-pinned", cpus, True)]
    chosen = set(args.only.split(",")) if args.only else None
    results = {}
    for name, threads, loaded in plan:
        if chosen and name not in chosen:
            continue
        r = results[name] = measure(args, threads, loaded, name)
        mix = ", ".join(f"{n} thread(s) {k} steps" for n, k in r["threads"].items())
        print(f"{name:<28} {r['tokens_per_s']:>9,.0f} tokens/s ({r['steps']} steps, {r['seconds']:.1f} s; {mix})",
              flush=True)
    if "loaded-default" in results and "quiet-1-thread" in results:
        kept = results["loaded-default"]["tokens_per_s"] / results["quiet-1-thread"]["tokens_per_s"]
        print(f"loaded-default / quiet-1-thread: {100 * kept:.0f}% (goal >= 50%)")
    if "quiet-default" in results and "quiet-1-thread" in results:
        gain = results["quiet-default"]["tokens_per_s"] / results["quiet-1-thread"]["tokens_per_s"]
        print(f"quiet-default / quiet-1-thread: {gain:.2f}x")
    write_result("threads_under_load", {"preset": args.preset, "steps": args.steps, "measurements": results}, head)


if __name__ == "__main__":
    main()
