"""Which setting brings a long run to 100% sooner, measured on the run itself.

A whole-kernel run takes many sessions, so a recipe cannot be tried on it from scratch, and a smaller slice does not
show its tail. Instead this forks the run: it copies the run's newest checkpoint into one branch per variant, resumes
each with the variant's `laam train` flags (a changed training setting needs `--allow-change`, and the branch records
the change), trains every branch to the same step, and compares the memorization checks each branch made after the
fork: body tokens still wrong, files exact, the smallest margin. Every branch starts from the same weights, optimizer
state, data position and replay plan, and keeps the run's training settings as its checkpoint records them (the
learning-rate schedule included: `--decay-steps`, so the longer `--max-steps` does not stretch it) and step mode
(compiled or eager, fp32 or bf16 autocast, from the run's last start event), so the variant's flags are the only
difference. The branches are trained and checked by this checkout's laam (the run's own last check, shown for
reference, by whichever laam trained the run). Branches run side by side at one thread each (the default; they
share the load alike) or, with `--one-at-a-time`, one after another at `--threads`.

    PYTHONPATH=. python benchmarks/fork_run.py --run /work/runs/linux-cpu/run --cache /work/runs/linux-cpu/cache \\
        --work /work/runs/forks --steps 1000 --branch floor-5pct= \\
        --branch "floor-15pct=--min-lr-ratio 0.15 --allow-change min_lr_ratio" --json

With --json the figures go to benchmarks/results/fork_run.json, or the path given (benchmarks/harness.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from harness import RESULTS, ROOT, header, mirror, read_run, train_argv, write_result

from laam.train.checkpoint import checkpoints, read_state
from laam.train.resume import LATER_SETTINGS, TRAINING_SETTINGS


def mode_flags(run_dir: Path, precision: str) -> list[str]:
    """`laam train` flags that fix the step mode the run last trained in (a probe under the branches' shared load
    would measure nonsense, and branches in different modes would differ in more than their flags)."""
    flags = [] if precision == "auto" else ["--precision", precision]  # the run's own setting, part of its identity
    starts = [r for r in read_run(run_dir).events if r.get("event") == "start" and r.get("step_mode")]
    if not starts:
        return flags
    mode = starts[-1]["step_mode"]
    flags.append("--compile" if mode.startswith("compiled") else "--no-compile")
    if "bf16" in mode and precision == "auto":  # autocast chosen by the probe: fixed as the model's precision
        flags += ["--precision", "bf16", "--allow-change", "model.precision"]
    return flags


def run_settings(identity: dict) -> list[str]:
    """`laam train` flags for the training settings the run has now (its checkpoint's identity: the preset's, or
    a value changed on an earlier resume), so a branch without flags continues the run as it is."""
    return train_argv({name: identity[name] for name in (*TRAINING_SETTINGS, *LATER_SETTINGS) if name in identity})


def parse_branch(text: str) -> tuple[str, list[str]]:
    name, sep, flags = text.partition("=")
    if not sep or not name or "/" in name:
        raise SystemExit(f"--branch {text!r}: write NAME=FLAGS (FLAGS may be empty for the run as it is)")
    return name, shlex.split(flags)


def check_figures(row: dict, files: int) -> dict:
    return {"step": row["step"], "tokens": row["tokens"], "body_wrong": row["body_total"] - row["body_correct"],
            "memorized": row["memorized"], "files_exact": files - row["wrong_files"],
            "min_margin": row.get("min_margin")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="the run folder to fork (`laam train --out`)")
    parser.add_argument("--cache", type=Path, required=True, help="the run's --cache folder")
    parser.add_argument("--mirror", help="kernel mirror (default: $LAAM_MIRROR or ../shared/data/kernel-mirror)")
    parser.add_argument("--release", default="1.0", help="the run's release (default 1.0)")
    parser.add_argument("--work", type=Path, required=True, help="folder the branches are made in (WORK/NAME/run)")
    parser.add_argument("--steps", type=int, required=True, help="optimizer steps each branch trains past the fork")
    parser.add_argument("--branch", action="append", required=True, metavar="NAME=FLAGS",
                        help="a branch and its extra `laam train` flags (repeatable; NAME= for the run unchanged)")
    parser.add_argument("--one-at-a-time", action="store_true", help="run the branches one after another")
    parser.add_argument("--threads", type=int, default=1, help="threads per branch (default 1)")
    parser.add_argument("--files", type=int, default=561, help="files in the corpus (files exact = files - wrong)")
    parser.add_argument("--json", nargs="?", const=RESULTS / "fork_run.json", type=Path, metavar="PATH",
                        help="write the figures as JSON (default path: benchmarks/results/fork_run.json)")
    args = parser.parse_args()

    head = header("fork_run")
    branches = dict(parse_branch(b) for b in args.branch)
    found = checkpoints(args.run)
    if not found:
        raise SystemExit(f"{args.run}: no checkpoints/step-* folder to fork from")
    source = found[-1]
    state = read_state(source)
    start = state["step"]
    preset = json.loads((args.run / "laam-run.json").read_text()).get("preset")
    until = start + args.steps
    common = [args.release, "--mirror", str(mirror(args.mirror)), "--cache", str(args.cache), "--resume",
              "--max-steps", str(until), *run_settings(state["identity"]), "--no-verify",
              "--threads", str(args.threads), *(["--preset", preset] if preset else []),
              *mode_flags(args.run, state["model_config"].get("precision", "auto"))]
    print(f"forking {source} (step {start}) into {', '.join(branches)}; each trains to step {until}")

    procs: dict[str, subprocess.Popen] = {}
    started = time.perf_counter()
    for name, flags in branches.items():
        folder = args.work / name / "run"
        if folder.exists():
            raise SystemExit(f"{folder} exists: pick another --work or remove it")
        (folder / "checkpoints").mkdir(parents=True)
        shutil.copytree(source, folder / "checkpoints" / source.name)
        for extra in ("laam-run.json", "metrics.jsonl"):
            shutil.copy2(args.run / extra, folder / extra)
        argv = [sys.executable, "-m", "laam", "train", *common, "--out", str(folder), *flags]
        log = open(folder.parent / "train.log", "w")
        procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        print(f"{name}: {shlex.join(argv[1:])}")
        if args.one_at_a_time and procs[name].wait():
            raise SystemExit(f"branch {name} failed: see {folder.parent / 'train.log'}")
    while any(p.poll() is None for p in procs.values()):
        time.sleep(60)
        steps = {name: read_run(args.work / name / "run").rows[-1].get("step") for name in procs}
        print(f"{time.perf_counter() - started:6.0f} s  " + "  ".join(f"{n} step {s}" for n, s in steps.items()),
              flush=True)
    failed = [name for name, p in procs.items() if p.returncode]
    if failed:
        raise SystemExit(f"branch(es) {', '.join(failed)} failed: see {args.work}/NAME/train.log")

    before = [r for r in read_run(args.run).checks if r["step"] <= start]
    fork = check_figures(before[-1], args.files) if before else None  # the run's last check before the fork
    results = {}
    for name, flags in branches.items():
        branch = read_run(args.work / name / "run")
        checks = [r for r in branch.checks if r["step"] > start]
        trained = [r["train_seconds"] for r in branch.rows if r["step"] > start and "train_seconds" in r]
        # the branch's own training time (checks excluded): a variant that costs more per step (a grown model)
        # must win per second, not only per step
        seconds = round(trained[-1] - state["train_seconds"], 1) if trained else None
        results[name] = {"flags": shlex.join(flags), "train_seconds": seconds,
                         "checks": [check_figures(r, args.files) for r in checks]}
        last = results[name]["checks"][-1] if checks else None
        print(f"{name:>16}: {seconds} s of training, "
              + (f"step {last['step']}: {last['body_wrong']:,} body tokens wrong "
                 f"({last['body_wrong'] - fork['body_wrong']:+,} since step {fork['step']}), "
                 f"{last['files_exact']} files exact, min margin {last['min_margin']}"
                 if last and fork else "no check after the fork"))
    if args.json:
        write_result("fork_run", {"run": str(args.run),
                                  "fork": {"checkpoint": source.name, "step": start, "last_check": fork},
                                  "steps": args.steps, "parallel": not args.one_at_a_time,
                                  "threads": args.threads, "wall_seconds": round(time.perf_counter() - started, 1),
                                  "branches": results}, head, path=args.json)


if __name__ == "__main__":
    main()
