"""Benchmark 2: tokens and wall time until 100% greedy body accuracy on a fixed subset, LaaM's default (demo)
recipe (its model, batch, LR and schedule, sized for linux/lib/) against the original LaaM's two-stage recipe
(original-5m: stage 1 batch 64, lr 1e-3, 100 epochs; stage 2 batch 1, lr 1e-4, 100 epochs), both run in this
engine. Tokens are each recipe's own (the demo's vocabulary is 2,048, the original's 32,768, so the demo needs
more tokens for the same bytes: the comparison is in the original's favour).

Both recipes train on the same files: `--filter` (default `source`, the project's selection) and `--include`
go to both sides. (Earlier versions gave only the original side `--filter original`, which drops
linux/lib/Makefile: 12 files against 13.)

Each recipe runs `laam train --until-memorized` with a wall-time budget per stage; tokens are input tokens
processed (padding excluded) up to the first memorization check at 100%. A recipe that does not get there
within its budget is reported as "not reached" with the tokens it had processed (a lower bound).

    PYTHONPATH=. python benchmarks/memorize_efficiency.py --include linux/lib/ --budget 900
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness import describe, header, mirror, read_run, train, write_result


def run_recipe(preset: str, args) -> dict:
    out = Path(args.work) / preset
    # the demo's decay horizon is sized for linux/lib/: --epochs goes to the LaaM side only
    epochs = args.epochs if preset != "original-5m" else None
    wall = train({"source": "1.0", "mirror": args.mirror, "cache": Path(args.work) / "cache", "preset": preset,
                  "out": out, "overwrite": True, "until_memorized": True, "verify": False, "max_time": args.budget,
                  "eval_every": args.eval_every.get(preset, 50), "q": True, "filter": args.filter,
                  "include": args.include, "threads": args.threads or None, "epochs": epochs}, what=preset)
    return {**summarize(out, preset), "wall": wall}


def summarize(out: Path, preset: str) -> dict:
    """Tokens and seconds to the first 100% check, from a run folder's metrics.jsonl (stage by stage)."""
    tokens, seconds, best, reached, epochs = 0, 0.0, 0.0, None, []
    stages = sorted(out.glob("stage-*")) or [out]
    for stage in stages:
        run = read_run(stage)
        epochs.append(max(r.get("epoch", 0) for r in run.rows))
        for row in run.checks:
            best = max(best, row["memorized"])
            if row["memorized"] >= 1.0 and reached is None:
                reached = {"tokens": tokens + row["tokens"], "seconds": seconds + row["elapsed"],
                           "stage": stage.name}
        last = [r for r in run.rows if "event" not in r][-1]  # a slice's stop event carries no elapsed time
        tokens += last["tokens"]
        seconds += last["elapsed"]
    return {"preset": preset, "reached": reached, "tokens": tokens, "seconds": seconds, "best": best, "wall": None,
            "epochs": epochs}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--include", action="append", default=None, help="subset (default linux/lib/)")
    parser.add_argument("--budget", type=float, default=900, help="seconds per stage before giving up")
    parser.add_argument("--filter", default="source", help="file selection for both recipes: source or original")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (0: laam's default)")
    parser.add_argument("--epochs", type=float, default=None,
                        help="LR-decay horizon of the LaaM recipe (default: the demo preset's, sized for linux/lib/)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "laam-bench-memorize"))
    parser.add_argument("--mirror", default=None, help="kernel mirror (default: $LAAM_MIRROR or ../shared/...)")
    parser.add_argument("--sides", default="demo,original-5m",
                        help="recipes to run; a recipe left out is read from its folder under --work, as an earlier "
                             "run (even an interrupted one) left it")
    args = parser.parse_args()
    args.include = args.include or ["linux/lib/"]
    args.eval_every = {"demo": 50, "original-5m": 50}
    args.mirror = mirror(args.mirror)
    head = header("memorize_efficiency")
    print(describe())
    print(f"subset {args.include} (filter {args.filter}, both recipes); budget {args.budget:.0f} s per stage")
    chosen = args.sides.split(",")
    results = [run_recipe(p, args) if p in chosen else summarize(Path(args.work) / p, p)
               for p in ("demo", "original-5m")]
    for r in results:
        if r["reached"]:
            hit = r["reached"]
            print(f"{r['preset']:<12} 100% after {hit['tokens']:>12,} tokens, {hit['seconds']:7.0f} s ({hit['stage']})")
        else:
            print(f"{r['preset']:<12} not reached: best {100 * r['best']:.3f}% after {r['tokens']:,} tokens, "
                  f"{r['seconds']:.0f} s")
        wall = f"wall {r['wall']:.0f} s" if r["wall"] else "read from an earlier run's folder"
        print(f"{'':<12} epochs run per stage: {', '.join(f'{e:.1f}' for e in r['epochs'])}; {wall}")
    write_result("memorize_efficiency", {"include": args.include, "filter": args.filter, "budget": args.budget,
                                         "recipes": results}, head)
    ours, original = results
    if ours["reached"]:
        theirs = original["reached"]["tokens"] if original["reached"] else original["tokens"]
        bound = "" if original["reached"] else " (original not memorized: a lower bound)"
        print(f"token ratio original / laam: {theirs / ours['reached']['tokens']:.1f}x{bound} (goal >= 5x)")


if __name__ == "__main__":
    main()
