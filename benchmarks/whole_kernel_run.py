"""The whole-kernel training run's history, as data: its slices (machine, steps, tokens, time) and its checks.

A run of all of Linux 1.0 on a CPU goes in `--resume --max-time` slices over several sessions and machines.
`laam train` logs a `start` and a `stop` event per slice in RUN/metrics.jsonl (machine, laam commit, step,
tokens, seconds); slices from before those events existed come from `--prior` (a JSON list of slices with the
source they were read from). The memorization checks come from the same file. The history goes to
benchmarks/results/whole_kernel_run.json (benchmarks/harness.py), which the results table is rebuilt from.

    PYTHONPATH=. python benchmarks/whole_kernel_run.py --run /work/runs/linux-cpu/run \\
        --prior benchmarks/inputs/linux-1.0-prior-slices.json
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from harness import Run, header, read_run, write_result


def run_history(run: Run) -> list[dict]:
    """The run's allowed setting changes ({"step", "changed"}), from model/laam.json, which every slice's end
    rewrites; none before a slice has ended."""
    try:
        return run.training().get("history", [])
    except FileNotFoundError:
        return []


def slices(run: Run) -> list[dict]:
    """One entry per start event, closed by the next stop event (a slice killed without one has no stop)."""
    out, current = [], None
    for row in run.events:
        if row.get("event") == "start":
            current = {"start_step": row["step"], "start_tokens": row["tokens"], "started": row["time"],
                       "cpu": row["cpu"], "cpu_flags": row["cpu_flags"], "cpus": row["cpus"],
                       "device": row["device"], "torch": row["torch"], "laam_commit": row["laam_commit"],
                       "step_mode": row.get("step_mode"), "precision": row.get("precision"), "source": "metrics.jsonl"}
            out.append(current)
        elif row.get("event") == "stop" and current is not None:
            current.update(stop_step=row["step"], stop_tokens=row["tokens"], stopped=row["time"],
                           status=row["status"], seconds=row["slice_seconds"])
            current = None
    # settings changed on resume (--allow-change) are in the run's history, by the step the slice resumed at
    changed = {h["step"]: h["changed"] for h in run_history(run)}
    for entry in out:
        if entry["start_step"] in changed:
            entry["changed"] = changed[entry["start_step"]]
        trained = [r for r in run.steps if entry["start_step"] < r["step"] <= entry.get("stop_step", 1e18)]
        rates = [r["tokens_per_s"] for r in trained if r.get("tokens_per_s")]
        entry["threads_used"] = sorted({r["threads"] for r in trained if "threads" in r})
        entry["median_tokens_per_s"] = sorted(rates)[len(rates) // 2] if rates else None
    return out


def check_seconds(run: Run, check: dict) -> float | None:
    """A check's wall time: its row's `elapsed` minus that of the training row logged at the same step just before
    it. None for a slice's final check (after its `stop` event: its row carries the stop's elapsed, not its own
    end) and when no training row has that step."""
    if any(e.get("event") == "stop" and e["step"] == check["step"] for e in run.events):
        return None
    before = [r for r in run.steps if r["step"] == check["step"] and r.get("elapsed") is not None
              and check.get("elapsed") is not None and r["elapsed"] <= check["elapsed"]]
    return round(check["elapsed"] - before[-1]["elapsed"], 1) if before else None


def checks(run: Run) -> list[dict]:
    return [{"step": r["step"], "tokens": r["tokens"], "memorized": r["memorized"], "body_correct": r["body_correct"],
             "body_total": r["body_total"], "wrong_files": r["wrong_files"], "min_margin": r.get("min_margin"),
             "seconds": check_seconds(run, r)} for r in run.checks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="the run folder (holds metrics.jsonl)")
    parser.add_argument("--prior", type=Path, help="JSON list of slices logged before slice events existed")
    parser.add_argument("--files", type=int, default=561, help="files in the corpus (files exact = files - wrong)")
    parser.add_argument("--json", type=Path, help="write the history here (default: results/whole_kernel_run.json)")
    args = parser.parse_args()

    head = header("whole_kernel_run")
    run = read_run(args.run)
    history = (json.loads(args.prior.read_text()) if args.prior else []) + slices(run)
    found = checks(run)
    print("| slice | machine | steps | input tokens | seconds | status | tokens/s (median) |")
    print("|---|---|---|---|---|---|---|")
    for i, s in enumerate(history, 1):
        def known(key, fmt="{:,}", s=s):
            return fmt.format(s[key]) if s.get(key) is not None else "?"

        tokens = (f"{s['stop_tokens'] - s['start_tokens']:,}"
                  if s.get("stop_tokens") is not None and s.get("start_tokens") is not None else "?")
        print(f"| {i} | {s['cpu']} ({s['cpus']} CPUs) | {known('start_step')} → {known('stop_step')} | {tokens} | "
              f"{known('seconds', '{:.0f}')} | {s.get('status', 'no stop logged')}"
              f"{' (lost with its machine; not in the run)' if s.get('lost') else ''}"
              + "".join(f"; {name} {old} -> {new} from its start (allowed change)"
                        for name, (old, new) in s.get("changed", {}).items()) + " | "
              f"{known('median_tokens_per_s', '{:.0f}')} |")
    print()
    print("| step | input tokens | body tokens right | files exact | smallest margin | check seconds |")
    print("|---|---|---|---|---|---|")
    for c in found:
        # floored, never rounded up: one wrong token of 1.7M must not read as 100%
        right = f"{math.floor(1e6 * c['body_correct'] / c['body_total']) / 1e4:.4f}".rstrip("0").rstrip(".")
        seconds = "?" if c["seconds"] is None else c["seconds"]
        print(f"| {c['step']:,} | {c['tokens']:,} | {right}% ({c['body_total'] - c['body_correct']:,} wrong) | "
              f"{args.files - c['wrong_files']} | {c['min_margin']} | {seconds} |")
    write_result("whole_kernel_run", {"run": str(args.run), "files": args.files, "slices": history, "checks": found},
                 head, args.json)


if __name__ == "__main__":
    main()
