"""benchmarks/RESULTS.md, generated from benchmarks/results/*.json: one row per result file (its headline figures,
machine, date, commit) and what each benchmark's figures mean. The JSON files are the results; this page is a view
of them, so it is never edited by hand (tests/test_results_table.py fails when it is stale).

    python benchmarks/results_table.py          # rewrite benchmarks/RESULTS.md
    python benchmarks/results_table.py --check  # exit 1 if RESULTS.md is not what the JSON files give

A result file is NAME.json, written by the benchmark script through benchmarks/harness.py (`write_result`), or
converted from the prose this page used to hold, with a "source" field naming where its figures were recorded.
Several files may hold results of one benchmark (e.g. on two machines): "benchmark" names the script.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
RESULTS = BENCHMARKS / "results"
PAGE = BENCHMARKS / "RESULTS.md"
FIGURES = BENCHMARKS / "figures"  # figures/NAME.png is drawn under the table for result NAME
REQUIRED = ("benchmark", "command", "commit", "machine", "date")


def pct(share: float) -> str:
    """A share as a percentage floored to 3 decimals: one wrong token of millions must not read as 100%."""
    floored = math.floor(share * 1e5) / 1e3
    return f"{floored:.3f}".rstrip("0").rstrip(".") + "%"


def count(n: float) -> str:
    return f"{n:,.0f}"


# --- headline figures, one function per benchmark ----------------------------------------------------------------

def throughput(r: dict) -> str:
    ratios = r["ratios"]
    parts = [f"laam float32 = {ratios['laam_float32_over_original_own']:.2f}x the original's own setting, "
             f"{ratios['laam_float32_over_original_best']:.2f}x its best"]
    if "like_for_like_1_thread" in ratios:
        parts.append(f"{ratios['like_for_like_1_thread']:.2f}x like for like on 1 thread")
    return "; ".join(parts)


def head_loss(r: dict) -> str:
    cells = []
    for shape, sides in r["shapes"].items():
        ours = next(v["ms"] for k, v in sides.items() if "laam's chunk" in k)
        plain = sides["plain logits + cross_entropy"]["ms"]
        cells.append(f"{shape}: {count(ours)} ms (plain {count(plain)} ms)")
    return "fused head + loss, laam's chunk: " + "; ".join(cells)


def memorize_efficiency(r: dict) -> str:
    cells = []
    for recipe in r["recipes"]:
        if recipe["reached"]:
            cells.append(f"{recipe['preset']} 100% after {count(recipe['reached']['tokens'])} tokens")
        else:
            cells.append(f"{recipe['preset']} not reached (best {pct(recipe['best'])} after "
                         f"{count(recipe['tokens'])} tokens)")
    ratio = f"; token ratio {r['token_ratio']}x (a lower bound)" if "token_ratio" in r else ""
    return "; ".join(cells) + ratio


def demo(r: dict) -> str:
    return (f"{r['wall_seconds']:.0f} s end to end ({r['training_seconds']:.0f} s training, {count(r['tokens'])} "
            f"tokens); {pct(r['memorized'])} memorized, {r['exact_files']}/{r['files']} files byte-exact")


def gpu_memorize(r: dict) -> str:
    last = r["checks"][-1]
    state = "100% reached" if r["reached"] else f"100% not reached: {pct(last['memorized'])} at the stop"
    return f"{count(r['tokens_per_s'])} tokens/s; {state} ({last['elapsed']} s, step {last['step']})"


def margin_drift(r: dict) -> str:
    return (f"largest margin change {r['largest_margin_change']} logits over {len(r['models'])} models "
            "(bf16, GGUF f32/f16/q8_0)")


def min_margin_cost(r: dict) -> str:
    margins = r["margins"]
    base = margins[min(margins, key=float)]["tokens"]
    return f"{r['preset']}: " + "; ".join(
        f"--min-margin {m}: {count(v['tokens'])} tokens to stop ({v['tokens'] / base - 1:+.1%})"
        for m, v in margins.items())


def equivalence(r: dict) -> str:
    files, decoders = r["files"], r["decoders"]
    every = [d for d, v in decoders.items() if v["exact"] == files]
    short = [f"{d} {v['exact']}/{files}" for d, v in decoders.items() if v["exact"] < files]
    return f"{len(every)} of {len(decoders)} decoders give all {files} files; " + ", ".join(short)


def stock_pipeline_check(r: dict) -> str:
    return f"{r['exact']}/{r['files']} files byte-exact, laam modules loaded: {r['laam_modules_loaded']}"


def licenses(r: dict) -> str:
    agree, notice = r["kernel_agreement"], r["notice_against_tags"]
    same = agree.get("valid for the kernel, same expression", 0)
    different = agree.get("valid for the kernel, DIFFERENT", 0)
    share = notice["agree"] / (notice["agree"] + notice["differ"])
    return (f"{r['corpus']}: {count(r['kept_files'])} files; tags the kernel reads as valid: {count(same)} same "
            f"expression, {different} different; notices give the tag's licenses in {share:.1%}")


def modern_kernel(r: dict) -> str:
    peaks = {name: s["peak_rss_gb"] if "peak_rss_gb" in s else s["peak_rss_bytes"] / 1024**3
             for name, s in r["steps"].items()}
    worst = max(peaks, key=peaks.get)
    return f"largest peak RSS {peaks[worst]:.2f} GB ({worst}) against the 4 GB goal, {len(peaks)} steps"


def threads_under_load(r: dict) -> str:
    m = r["measurements"]
    kept = m["loaded-default"]["tokens_per_s"] / m["quiet-1-thread"]["tokens_per_s"]
    return (f"loaded default keeps {kept:.0%} of quiet 1-thread ({count(m['loaded-default']['tokens_per_s'])} of "
            f"{count(m['quiet-1-thread']['tokens_per_s'])} tokens/s)")


def tail_errors(r: dict) -> str:
    files = sorted({w["path"] for w in r["wrong"]})
    return f"{len(r['wrong'])} body tokens wrong of {count(r['body_tokens'])}, in {', '.join(files) or 'no file'}"


def memorize_scaling(r: dict) -> str:
    cells = []
    for key, law in r["laws"].items():
        if not key.endswith("-1"):
            continue
        millions = law.get("whole_kernel_tokens_millions") or law["whole_kernel_tokens"] / 1e6
        cells.append(f"size {key[:-2]}: to 100% tokens = {law['a']:.3g} * N^{law['b']:.3f}, whole kernel "
                     f"≈ {millions:,.0f}M tokens")
    return f"{r['preset']}: " + "; ".join(cells)


def memorize_kernel(r: dict) -> str:
    cells = []
    for name, side in r["sides"].items():
        state = "100%" if side["reached"] else f"stopped at {pct(side['memorized'])}"
        cells.append(f"{name}: {state} after {count(side['tokens'])} tokens")
    return "; ".join(cells)


def recipe_sweep(r: dict) -> str:
    memorized = [x for x in r["recipes"] if x["to"]["1.0"]]
    best = min(memorized, key=lambda x: x["to"]["1.0"]) if memorized else None
    return (f"{len(memorized)} of {len(r['recipes'])} recipes reached 100%"
            + (f"; fewest tokens: {best['run']} ({best['flags']}), {count(best['to']['1.0'])}" if best else ""))


def sampling_certificate(r: dict) -> str:
    return f"{r['agree']} of {r['checked']} predictions inside the observed 99.9% interval"


def foreign_audit(r: dict) -> str:
    return (f"{r['setting']} on {r['files']} files: {r['audit_seconds']:.0f} s "
            f"({r['continuations']} continuations, {r['caught_files']} caught)")


def trace_speed(r: dict) -> str:
    largest = max(r["rows"], key=lambda row: row["bytes"])
    return (f"{largest['bytes'] / 2**20:.0f} MiB {largest['kind']}: {largest['new_seconds']} s, "
            f"{largest['speedup']}x searching every position")


def whole_kernel_run(r: dict) -> str:
    last = r["checks"][-1]
    return (f"{pct(last['body_correct'] / last['body_total'])} of body tokens at step {last['step']:,} "
            f"({count(last['tokens'])} tokens), {len(r['slices'])} slices")


def step_speed(r: dict) -> str:
    return "; ".join(f"{s['side']} {s['step_ms']:.0f} ms/step ({s['speedup']:.2f}x)" for s in r["sides"])


def bench_audit(r: dict) -> str:
    return "; ".join(f"{name}: {minutes:.1f} min" for name, minutes in r["whole_kernel_minutes"].items())


def bench_compress(r: dict) -> str:
    measured = "; ".join(f"batch {row['batch_size']}: {row['bytes'] / row['compress_seconds']:,.0f} B/s, "
                         f"{row['exact_files']}/{row['files']} exact" for row in r["rows"])
    projected = ", ".join(f"{p['projected_minutes']:.1f} min at batch {p['batch_size']}"
                          for p in r.get("projection", []))
    return measured + (f"; whole corpus projected: {projected}" if projected else "")


def margins_size(r: dict) -> str:
    return "; ".join(f"{row['name']}: {row['first_bytes'] / row['positions']:.2f} -> "
                     f"{row['compact_bytes'] / row['positions']:.2f} bytes per position" for row in r["rows"])


def fork_run(r: dict) -> str:
    ends = {name: b["checks"][-1] for name, b in r["branches"].items() if b["checks"]}
    return (f"from step {r['fork']['step']:,}, {r['steps']:,} steps each: "
            + "; ".join(f"{name} {c['body_wrong']:,} body tokens wrong, {c['files_exact']} files exact"
                        for name, c in ends.items()))


HEADLINES = {f.__name__: f for f in (
    throughput, head_loss, memorize_efficiency, demo, gpu_memorize, margin_drift, min_margin_cost, equivalence,
    stock_pipeline_check, licenses, modern_kernel, threads_under_load, tail_errors, memorize_scaling, memorize_kernel,
    recipe_sweep, sampling_certificate, foreign_audit, trace_speed, whole_kernel_run, step_speed, bench_audit,
    bench_compress, margins_size, fork_run)}

MEANING = {
    "throughput": "Non-pad input tokens per second of training steps, the original LaaM's HF Trainer against "
                  "`laam train` on the same original-5m model and corpus; the ratios are the issue's goals (5x its "
                  "own bf16 setting, 2x its best) and like for like (both float32, same threads).",
    "head_loss": "Milliseconds of one forward + backward of the LM head and loss (4,096 rows), plain logits against "
                 "torch's fused linear_cross_entropy with torch's and laam's chunk size.",
    "memorize_efficiency": "Input tokens until 100% of body tokens are right on `linux/lib/`: the `demo` recipe "
                           "against the original's two-stage recipe; a recipe that never gets there gives a lower "
                           "bound on the ratio (goal: at least 5x).",
    "demo": "Wall time of `laam run --preset demo` from a fresh cache (tokenizer, training, compress, audit, card; "
            "goal: at most 10 minutes) and its memorization.",
    "gpu_memorize": "All of Linux 1.0 on one GPU: training tokens/s and the memorization checks until 100% or the "
                    "time cap.",
    "margin_drift": "The largest change of a body token's margin (true logit minus the best other) between fp32 and "
                    "bf16 or GGUF runs of the same model: what `--min-margin`'s default must exceed.",
    "min_margin_cost": "Training tokens until `--until-memorized` stops with and without a margin (same seed), and "
                       "the smallest margin at the stop.",
    "equivalence": "For each way a published model folder can be run, how many training files it gives back byte "
                   "for byte from the path prompt (greedy).",
    "stock_pipeline_check": "Stock transformers' pipeline with laam unimportable: files regenerated with the "
                            "SHA-256 of the folder's manifest.",
    "licenses": "How a modern release's licenses are read (by SPDX tag, notice, COPYING) and how far that agrees "
                "with the kernel's own tag rules.",
    "modern_kernel": "Peak RSS of each step of tokenizing a whole modern kernel (goal: at most 4 GB each).",
    "threads_under_load": "Training tokens/s with the default thread choice beside a busy process, against one "
                          "thread on a quiet machine (goal: at least 50%).",
    "tail_errors": "Every body token a run still gets wrong, with file and line and how long a run of tokens before "
                   "it occurs elsewhere.",
    "memorize_scaling": "Training tokens to 99%, 99.9% and 100% for growing slices of Linux 1.0, a power law fitted "
                        "over them, and its projection to the whole kernel (an extrapolation).",
    "memorize_kernel": "Tokens and time to 100% byte-exact on `linux/kernel/`, today's `demo-kernel` recipe against "
                       "earlier ones (goals: at most 1/3 of the tokens of the recipe issue 12 was filed against; at "
                       "most 3 minutes).",
    "recipe_sweep": "`laam train` runs of recipes that differ from a base recipe by the flags listed, on one slice: "
                    "input tokens to 99%, 99.9% and the first 100% of body tokens, and to the stop with every body "
                    "token right by 1 logit.",
    "sampling_certificate": "The predicted probability that sampling returns a file verbatim, checked against the "
                            "count in N samples of stock sampling (Wilson 99.9% interval).",
    "foreign_audit": "Time to audit a model laam did not train (any causal LM) on all of Linux 1.0.",
    "trace_speed": "`laam trace` on texts of growing size: seconds of the fast parse, and its speed-up over "
                   "searching every position.",
    "whole_kernel_run": "The whole-kernel CPU training run, slice by slice, and its memorization checks.",
    "step_speed": "One training step's time in eager or compiled mode, float32 or bf16, against the machine's GEMM "
                  "speed.",
    "bench_audit": "Estimated minutes of a whole Linux 1.0 audit from measured decoding rates.",
    "bench_compress": "`laam compress` speed and exactness by batch size.",
    "fork_run": "A long run forked at one checkpoint into branches that differ only in the flags listed, each "
                "trained the same number of steps: its memorization checks after the fork (which setting brings the "
                "run to 100% sooner).",
    "margins_size": "Bytes per scored position of the margin certificate (margins.npz) in its first layout (every "
                    "column int64) and the compact one, for a real audit's and a synthetic one of Linux 1.0's size.",
}


def load_results(folder: Path = RESULTS) -> dict[str, dict]:
    """Every result file by name; one line naming the file when a header field is missing."""
    results = {}
    for path in sorted(folder.glob("*.json")):
        record = json.loads(path.read_text())
        missing = [k for k in REQUIRED if not isinstance(record, dict) or record.get(k) in (None, "")]
        if missing:
            raise SystemExit(f"{path}: no {', '.join(missing)} (a result file carries {', '.join(REQUIRED)})")
        if record["benchmark"] not in HEADLINES:
            raise SystemExit(f"{path}: benchmark {record['benchmark']!r} has no headline in results_table.py")
        results[path.stem] = record
    return results


def cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def when(record: dict) -> str:
    date = record["date"]
    return f"{date[:10]} {date[11:16]} UTC" if len(date) == 25 and date[10] == "T" else date


def provenance(record: dict) -> str:
    if record.get("source"):
        return record["source"]
    return f"commit {record['commit']}{' (dirty)' if record.get('dirty') else ''}"


def render(results: dict[str, dict]) -> str:
    lines = ["# Benchmark results", "",
             "Generated by `python benchmarks/results_table.py` from `benchmarks/results/*.json`: edit the JSON (or "
             "run the benchmark again), not this page. Each file also holds the command, the full figures and the "
             "machine; earlier results are in git's history. Figures measured on different machines, or under "
             "load, do not compare (see the machine column).", "",
             "| result | headline | machine | date | where from |", "|---|---|---|---|---|"]
    for name, record in results.items():
        machine = record["machine"].removeprefix("machine: ")
        lines.append(f"| `{name}` | {cell(HEADLINES[record['benchmark']](record))} | {cell(machine)} | "
                     f"{cell(when(record))} | {cell(provenance(record))} |")
    lines += ["", "## What each figure means", ""]
    for benchmark in sorted({r["benchmark"] for r in results.values()}):
        scripts = [f"`benchmarks/{p.name}`" for p in (BENCHMARKS / f"{benchmark}.py", BENCHMARKS / f"{benchmark}.sh")
                   if p.is_file()] or ["`laam train` runs, no script of its own"]
        lines.append(f"- **{benchmark}** ({scripts[0]}): {MEANING[benchmark]}")
    figures = [name for name in results if (FIGURES / f"{name}.png").is_file()]
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{name}](figures/{name}.png)" for name in figures]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if RESULTS.md differs from the JSON files")
    args = parser.parse_args()
    text = render(load_results())
    if args.check:
        if PAGE.read_text() != text:
            print(f"{PAGE} is stale: run python benchmarks/results_table.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
