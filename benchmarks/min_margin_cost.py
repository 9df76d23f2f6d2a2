"""What `--min-margin` costs: training tokens until `--until-memorized` stops, on the demo preset (linux/lib/),
with and without a margin, side by side in one run.

Each side runs `laam train --preset demo --until-memorized --min-margin M --threads 1` (same seed, so the runs
are the same until the first check at 100%); tokens are input tokens processed (padding excluded), read from
each run's metrics.jsonl: at the first memorization check with every body token right, and where the run
stopped (every body token right by at least M). With --drift, each side's model then goes through
benchmarks/margin_drift.py: body tokens wrong under bf16 and GGUF f16/q8_0.

    PYTHONPATH=. python benchmarks/min_margin_cost.py --margins 0,1,3 --drift
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness import describe, header, mirror, read_run, train, write_result


def train_side(margin: float, args) -> Path:
    out = Path(args.work) / f"margin-{margin:g}"
    wall = train({"source": "1.0", "mirror": args.mirror, "cache": Path(args.work) / "cache", "preset": args.preset,
                  "out": out, "overwrite": True, "until_memorized": True, "min_margin": margin, "verify": False,
                  "threads": args.threads, "q": True}, what=f"--min-margin {margin}")
    print(f"--min-margin {margin:g}: trained in {wall:.0f} s wall", flush=True)
    return out


def summarize(out: Path) -> dict:
    run = read_run(out)
    checks = run.checks
    first = run.first_at(1.0)
    training = run.training()
    return {"status": training["status"], "steps": training["steps"], "tokens": training["tokens_seen"],
            "first_100": first["tokens"] if first else None, "first_100_margin": first.get("min_margin") if first
            else None, "min_margin": checks[-1].get("min_margin"), "memorized": checks[-1]["memorized"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--margins", default="0,1", help="comma-separated --min-margin values (logits)")
    parser.add_argument("--preset", default="demo")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--mirror", default=None, help="kernel mirror (default: $LAAM_MIRROR or ../shared/...)")
    parser.add_argument("--drift", action="store_true", help="measure each model's drift under bf16 and GGUF")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "laam-bench-min-margin"))
    args = parser.parse_args()
    margins = [float(m) for m in args.margins.split(",")]
    args.mirror = mirror(args.mirror)
    head = header("min_margin_cost")
    print(f"{describe()}; preset {args.preset}; --threads {args.threads}", flush=True)
    runs = {m: train_side(m, args) for m in margins}
    results = {m: summarize(out) for m, out in runs.items()}
    write_result("min_margin_cost", {"preset": args.preset, "threads": args.threads,
                                     "margins": {f"{m:g}": r for m, r in results.items()}}, head)
    base = results[margins[0]]["tokens"]
    print(f"\n{'--min-margin':>12} {'status':>10} {'steps':>6} {'tokens to 100%':>15} {'tokens to stop':>15} "
          f"{'extra':>7} {'min margin at stop':>19}")
    for m, r in results.items():
        first = f"{r['first_100']:,}" if r["first_100"] else "not reached"
        print(f"{m:>12g} {r['status']:>10} {r['steps']:>6} {first:>15} {r['tokens']:>15,} "
              f"{r['tokens'] / base - 1:>+7.1%} {r['min_margin']!s:>19}")
    if args.drift:
        import torch
        from margin_drift import measure

        torch.set_num_threads(args.threads)
        with tempfile.TemporaryDirectory() as work:
            for m, out in runs.items():
                print(f"\n--min-margin {m:g}:", end="")
                measure(out / "model", Path(args.work) / "cache", args.threads, Path(work))


if __name__ == "__main__":
    main()
