"""Benchmark 5: tokens and time to 100% byte-exact on linux/kernel/ (23 files, 154 KB), today's recipe against
yesterday's, in one run.

- "before": the `demo-kernel` preset as it was before error-focused replay (batch 16, lr 3e-3, 50 warm-up steps,
  cosine over 30 epochs to 0.5% of the peak, then at most 30 more epochs at that floor; uniform epochs; a check
  every 100 steps), written out below so that it stays reproducible whatever the preset becomes;
- "replay": the `demo-kernel` preset as issue 12 first retuned it (batch 4, windows sliding by 192, cosine over
  20 epochs, error-focused replay), written out below: fast at first, then stuck near 95% at its 0.5% LR floor
  (benchmark memorize_kernel, side "replay");
- "previous": the `demo-kernel` preset that first reached 100% (batch 4, stride 128, cosine over 60 epochs, a
  check every 220 steps), written out below;
- "now": the `demo-kernel` preset of this checkout.

Besides the first 100%, each side's share of body tokens right is printed at fixed token counts, so that recipes
that do not reach 100% within --budget still compare like for like.

Each runs `laam train --until-memorized --verify` on the same files with the same tokenizer. Tokens are input
tokens processed in training (padding excluded) up to the first memorization check at 100% of body tokens;
"seconds" is the run's elapsed time at that check (training and checks, under whatever load the machine had);
"regenerated" is the engine's greedy regeneration of every file from its path (--verify). A recipe that stops
(its own step cap, or --budget) before 100% is reported with its count at the stop: a lower bound.
Token counts do not depend on the machine's load (`--threads 1`: one thread, deterministic).

    PYTHONPATH=. python benchmarks/memorize_kernel.py --threads 1
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from harness import describe, header, mirror, read_run, train, write_result

BEFORE = """# demo-kernel as it was before error-focused replay (main at b824c20)
[corpus]
include = ["linux/kernel/"]
[model]
hidden_size = 128
intermediate_size = 512
num_layers = 4
num_heads = 4
num_kv_heads = 4
context = 256
stride = 128
vocab_size = 4096
[train]
batch_size = 16
lr = 3e-3
warmup_steps = 50
min_lr_ratio = 0.005
epochs = 30
until_memorized = true
save_every = 200
eval_every = 100
verify = true
"""

def variant(recipe: str, comment: str, **changes: str) -> str:
    """`recipe` with the given `key = value` lines changed (or added to [train])."""
    lines = [comment] + recipe.splitlines()[1:]
    for key, value in changes.items():
        found = [i for i, line in enumerate(lines) if line.split(" = ")[0] == key]
        if found:
            lines[found[0]] = f"{key} = {value}"
        else:
            lines.insert(lines.index("[train]") + 1, f"{key} = {value}")
    return "\n".join(lines) + "\n"


REPLAY = variant(BEFORE, "# demo-kernel as issue 12 first retuned it (replay, stride 192, 20 epochs at batch 4)",
                 stride="192", batch_size="4", epochs="20", replay="true")
PREVIOUS = variant(BEFORE, "# demo-kernel as session 6 left it (demo's recipe: batch 4, cosine over 60 epochs)",
                   batch_size="4", epochs="60", eval_every="220")
MILESTONES = (500_000, 1_000_000, 1_500_000, 2_000_000, 2_500_000, 3_000_000, 3_500_000)


def run(name: str, recipe: dict, args) -> dict:
    out = Path(args.work) / name
    wall = train({"source": "1.0", "mirror": args.mirror, "cache": Path(args.work) / "cache", **recipe, "out": out,
                  "overwrite": True, "until_memorized": True, "verify": True, "threads": args.threads, "q": True,
                  "include": args.include, "max_time": args.budget or None}, what=name)
    return {**summarize(out), "wall": wall}


def summarize(out: Path) -> dict:
    run = read_run(out)
    checks = run.checks
    hit = run.first_at(1.0)
    last = hit or checks[-1]
    training = run.training()
    regen = training.get("regeneration") or {}
    at = {m: [r["memorized"] for r in checks if r["tokens"] <= m][-1] for m in MILESTONES
          if checks[-1]["tokens"] >= m and checks[0]["tokens"] <= m}  # the last check at or before m tokens
    return {"reached": hit is not None, "tokens": last["tokens"], "step": last["step"], "seconds": last["elapsed"],
            "at": at,
            "memorized": last["memorized"], "wrong": last["body_total"] - last["body_correct"],
            "epochs": training["epochs"], "exact": regen.get("exact"), "files": regen.get("files"),
            "parameters": training["parameters"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--include", action="append", default=None, help="subset (default linux/kernel/)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (0: laam's default)")
    parser.add_argument("--budget", type=float, default=0, help="seconds per recipe before giving up (0: none)")
    parser.add_argument("--mirror", default=None, help="kernel mirror (default: $LAAM_MIRROR or ../shared/...)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "laam-bench-kernel"))
    parser.add_argument("--sides", default="before,now", help="recipes to run (before, replay, previous, now); "
                        "any other side whose folder is under --work, as an earlier run left it, is read back and "
                        "shown too")
    args = parser.parse_args()
    args.include = args.include or ["linux/kernel/"]
    args.mirror = mirror(args.mirror)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    for name, text in (("before", BEFORE), ("replay", REPLAY), ("previous", PREVIOUS)):
        (Path(args.work) / f"{name}.toml").write_text(text)
    head = header("memorize_kernel")
    print(describe())
    print(f"subset {args.include}; threads {args.threads or 'default'}; budget {args.budget or 'none'}")
    recipes = {"before": {"config": Path(args.work) / "before.toml"},
               "replay": {"config": Path(args.work) / "replay.toml"},
               "previous": {"config": Path(args.work) / "previous.toml"}, "now": {"preset": "demo-kernel"}}
    chosen = args.sides.split(",")
    results = {}
    for name, recipe in recipes.items():
        if name in chosen:
            results[name] = run(name, recipe, args)
        elif (Path(args.work) / name / "metrics.jsonl").is_file():
            results[name] = summarize(Path(args.work) / name)
        else:
            continue
        r = results[name]
        state = "100% after" if r["reached"] else f"stopped at {100 * r['memorized']:.4f}% ({r['wrong']} wrong) after"
        regen = f"{r['exact']} of {r['files']} files regenerated byte-exact" if r["files"] else "no regeneration"
        print(f"{name:<8} {state} {r['tokens']:>10,} tokens, step {r['step']}, {r['seconds']:.0f} s "
              f"({r['epochs']:.1f} epochs run); {regen}", flush=True)
    print("body tokens right at " + ", ".join(f"{m / 1e6:g}M" for m in MILESTONES) + " input tokens:")
    for name, r in results.items():
        print(f"  {name:<8} " + "  ".join(f"{100 * v:7.3f}%" if v is not None else "      —" for v in
                                         (r["at"].get(m) for m in MILESTONES)))
    write_result("memorize_kernel", {"include": args.include, "threads": args.threads, "budget": args.budget,
                                     "milestones": MILESTONES, "sides": results}, head)
    new = results.get("now")
    if not new or not new["reached"]:
        return
    for name in ("before", "previous"):
        if name in results:
            old = results[name]
            bound = "" if old["reached"] else f" ({name} did not reach 100%: a lower bound)"
            print(f"tokens {name} / now: {old['tokens'] / new['tokens']:.2f}x{bound} (goal >= 3x against before)")
    print(f"now: 100% after {new['seconds']:.0f} s of training and checks (goal <= 180 s on a quiet machine)")


if __name__ == "__main__":
    main()
