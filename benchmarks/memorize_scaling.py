"""Benchmark 6: a scaling law for memorization — training tokens and time to 100% byte-exact body tokens for
growing slices of Linux 1.0 and several model sizes, fitted and projected to the whole kernel.

Every run is `laam train --preset demo --until-memorized --verify` on one slice (its own tokenizer of
`--vocab` tokens), with the model shape of one size below; the recipe (batch, schedule) is the preset's, its
decay horizon in epochs, so it scales with the slice, and a memorization check runs every --check-epochs. For
each size and each share of body tokens (99%, 99.9%, 100%) the script fits tokens-to-share = a * (corpus
tokens)^b over the slices that reached it (least squares in log-log), and
projects the whole of Linux 1.0 (its token count under the same vocabulary) in tokens and in time: on this CPU
at the tokens/s the runs made here (or --cpu-tokens-per-s), and on one GPU at --gpu-tokens-per-s (default: the
H200 rate of the 25M-parameter linux-gpu preset in RESULTS.md, 596k tokens/s; a smaller model runs at least as
fast there, so the GPU figure is conservative for these sizes).

Capacity: beside each run, the slice's information content as xz -9e packs it (bits) and, with --compress, as
`laam compress` codes it under the trained model (compression.json: the coded stream plus the model's own
size is what the weights must hold), against the model's parameters (bits the corpus needs per parameter:
published estimates put a saturated model at ≈ 2-3.6 bits per parameter).

Results go to --work/scaling.json (a run already there is reused unless --rerun) and --work/scaling.png.

    PYTHONPATH=. python benchmarks/memorize_scaling.py --threads 1 --slices lib,ipc,mm --sizes s,m
    PYTHONPATH=. python benchmarks/memorize_scaling.py --threads 1 --slices fs --sizes s      # 902 KB: an hour+
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

from harness import describe, header, laam_command, mirror, read_run, train, write_result

H200_TOKENS_PER_S = 596_000  # benchmark gpu_memorize (benchmarks/results/gpu_memorize.json): linux-gpu, bf16, H200

SLICES = {  # growing slices; ipc/ (45 KB) and mm/ (79 KB) lie between lib/ (20 KB) and kernel/ (154 KB)
    "lib": ["linux/lib/"],
    "ipc": ["linux/ipc/"],
    "mm": ["linux/mm/"],
    "kernel": ["linux/kernel/"],
    "kmi": ["linux/kernel/", "linux/mm/", "linux/ipc/"],
    "fs": ["linux/fs/"],
}
SIZES = {  # model shapes; context and stride are the preset's throughout, so windows and attention cost stay the same
    "s": {"hidden_size": 128, "intermediate_size": 512, "num_layers": 4, "num_heads": 4, "num_kv_heads": 4},
    "m": {"hidden_size": 192, "intermediate_size": 768, "num_layers": 4, "num_heads": 6, "num_kv_heads": 6},
    "l": {"hidden_size": 256, "intermediate_size": 1024, "num_layers": 6, "num_heads": 8, "num_kv_heads": 8},
}
THRESHOLDS = (0.99, 0.999, 1.0)  # shares of body tokens right whose token counts are fitted


def load_slice(args, include: list[str]):
    """The slice's corpus as `laam train` loads it (same cache, so the same tokenizer folder)."""
    from laam.data.corpus import CorpusConfig, load_corpus

    return load_corpus(CorpusConfig(source="1.0", mirror=str(args.mirror), cache=Path(args.work) / "cache",
                                    include=tuple(include)), progress=False)


def slice_facts(args, include: list[str]) -> dict:
    """Bytes, xz -9e bits (laam compress's baseline) and tokens (all records, the slice's own --vocab tokenizer)."""
    from laam.data.records import file_bytes
    from laam.data.tokenizer import default_tokenizer_dir, encode_records, load_tokenizer, train_tokenizer
    from laam.proof.compress.baselines import BASELINES

    corpus = load_slice(args, include)
    data = b"".join(file_bytes(f.text, f.encoding) for f in corpus.files)
    folder = default_tokenizer_dir(corpus, args.vocab)
    if not (folder / "tokenizer.json").is_file():
        train_tokenizer(corpus, folder, args.vocab)
    tokens = sum(map(len, encode_records(load_tokenizer(folder), corpus.records())))
    return {"bytes": len(data), "xz_bits": 8 * len(BASELINES["xz -9e"](data)), "corpus_tokens": tokens,
            "n_files": len(corpus.files)}


def eval_every(args, corpus_tokens: int) -> int:
    """Steps between memorization checks: about every --check-epochs epochs whatever the slice's size, so the
    token count at which a slice first reaches a threshold has the same relative resolution on every slice
    (a fixed step count would check lib/ every 3 epochs and kernel/ every half epoch)."""
    from laam.model.presets import PRESETS

    recipe = PRESETS[args.preset]
    stride, batch = recipe["model"]["stride"], recipe["train"]["batch_size"]
    return max(1, round(args.check_epochs * corpus_tokens / stride / batch))


def train_run(args, name: str, include: list[str], size: str, corpus_tokens: int) -> dict:
    out = Path(args.work) / "runs" / f"{name}-{size}"
    settings = {"source": "1.0", "mirror": args.mirror, "cache": Path(args.work) / "cache", "preset": args.preset,
                "vocab_size": args.vocab, "out": out, "overwrite": True, "until_memorized": True, "verify": True,
                "threads": args.threads, "q": True, "eval_every": eval_every(args, corpus_tokens), "include": include,
                **SIZES[size], "max_time": args.budget or None}  # a ModelConfig field's flag is its name
    wall = train(settings, what=f"{name}-{size}")
    result = summarize(out)
    result["wall"] = wall
    if args.compress and result["reached"]:
        laam_command("compress", {"model": out / "model", "cache": Path(args.work) / "cache",
                                  "out": out / "model" / "corpus.laamz",
                                  "roundtrip": False})  # only the coded size is needed here; decoding is sequential
        coded = json.loads((out / "model" / "compression.json").read_text())
        result["laam_bits"] = 8 * (coded["archive"]["bytes"] - coded["archive"]["checksum_bytes"])
        result["weights_bits"] = 8 * coded["model"]["weights_bytes"]
    return result


def summarize(out: Path) -> dict:
    run = read_run(out)
    hit = run.first_at(1.0)
    last = hit or run.checks[-1]
    # tokens at the first check at or past each share of body tokens: the 100% point hangs on a few hard tokens
    # (kernel/mktime.c's month table, benchmark tail_errors); 99% and 99.9% follow the bulk of the corpus
    to = {str(t): (run.first_at(t) or {}).get("tokens") for t in THRESHOLDS}
    train_rows = [r for r in run.steps if r["step"] <= last["step"]]
    training = run.training()
    regen = training.get("regeneration") or {}
    step_seconds = train_rows[-1]["train_seconds"] if train_rows else 0.0
    return {"reached": hit is not None, "tokens": last["tokens"], "seconds": last["elapsed"],
            "memorized": last["memorized"], "parameters": training["parameters"],
            "train_tokens_per_s": last["tokens"] / step_seconds if step_seconds else None,
            "exact": regen.get("exact"), "files": regen.get("files"), "to": to}


def fit(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(a, b) of y = a * x^b by least squares on logs; None with fewer than two points."""
    if len({x for x, _ in points}) < 2:
        return None
    xs, ys = [math.log(x) for x, _ in points], [math.log(y) for _, y in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
    return math.exp(my - b * mx), b


def save(store: Path, key: str, value: dict) -> dict:
    """Add one entry to scaling.json and return the whole table; read again just before writing, so runs of
    other sizes in parallel processes (one per core) keep theirs."""
    from laam.io import atomic_write_text

    table = json.loads(store.read_text()) if store.is_file() else {}
    table[key] = value
    atomic_write_text(store, json.dumps(table, indent=1))
    return table


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def reached_at(r: dict, threshold: float) -> int | None:
    """Training tokens at which run r first reached a share of body tokens (None: not within the run)."""
    return r["to"].get(str(threshold))


def fit_points(rows: list[dict], threshold: float) -> list[tuple[int, int]]:
    """(corpus tokens, tokens to threshold) of the runs that reached 100%: a run its recipe left short of 100%
    (demo-kernel's 30 epochs give lib/ too few steps) is in the table but not in any law."""
    return [(r["corpus_tokens"], reached_at(r, threshold)) for r in rows if r["reached"] and reached_at(r, threshold)]


def report(args, table: dict, whole_tokens: int, whole_bits: int) -> dict:
    """Print the table and the fitted laws, draw the plot; the laws and projections, by size and threshold."""
    print(f"\n{'slice':<8}{'size':<6}{'params':>10}{'corpus tok':>12}{'xz bits':>11}{'bits/param':>11}{'coded':>8}"
          + "".join(f"{f'to {100 * t:g}%':>12}" for t in THRESHOLDS)
          + f"{'epochs*':>9}{'seconds':>9}{'tok/s':>8}  regenerated")
    for r in sorted(table.values(), key=lambda r: (r["size"], r["corpus_tokens"])):
        mark = "" if r["reached"] else f" (100% not reached: {100 * r['memorized']:.3f}% after {r['tokens']:,})"
        regen = f"{r['exact']}/{r['files']}" if r.get("files") else "-"
        tps = f"{r['train_tokens_per_s']:,.0f}" if r.get("train_tokens_per_s") else "-"
        cells = "".join(f"{reached_at(r, t):>12,}" if reached_at(r, t) else f"{'-':>12}" for t in THRESHOLDS)
        coded = f"{r['laam_bits']:>8,}" if r.get("laam_bits") else f"{'-':>8}"
        print(f"{r['slice']:<8}{r['size']:<6}{r['parameters']:>10,}{r['corpus_tokens']:>12,}{r['xz_bits']:>11,}"
              f"{r['xz_bits'] / r['parameters']:>11.3f}{coded}{cells}{r['tokens'] / r['corpus_tokens']:>9.1f}"
              f"{r['seconds']:>9.0f}{tps:>8}  {regen}{mark}")
    print("(bits/param: the slice's xz -9e bits per model parameter; coded: bits of `laam compress`'s stream under "
          "the trained model, with --compress; * training tokens of the run / corpus tokens: each target costs "
          "about (context + 1) / stride input tokens, 2 at stride 128; only runs that reached 100% enter the fits)")
    print(f"\nall of Linux 1.0: {whole_tokens:,} tokens at vocab {args.vocab}, xz -9e {whole_bits:,} bits")
    laws = {}
    for size in sorted({r["size"] for r in table.values()}):
        rows = [r for r in table.values() if r["size"] == size]
        params = rows[0]["parameters"]
        rates = [r["train_tokens_per_s"] for r in rows if r.get("train_tokens_per_s")]
        cpu = args.cpu_tokens_per_s or (min(rates) if rates else None)
        print(f"size {size} ({params:,} parameters, {whole_bits / params:.2f} xz bits of the whole kernel per "
              f"parameter):")
        for threshold in THRESHOLDS:
            points = fit_points(rows, threshold)
            law = fit(points)
            if law is None:
                print(f"  to {100 * threshold:g}%: fewer than two slices got there, no fit")
                continue
            a, b = law
            tokens = a * whole_tokens ** b
            laws[f"{size}-{threshold:g}"] = {"a": a, "b": b, "slices": len(points), "whole_kernel_tokens": tokens,
                                             "cpu_tokens_per_s": cpu, "gpu_tokens_per_s": args.gpu_tokens_per_s}
            print(f"  to {100 * threshold:g}%: tokens = {a:.3g} * N^{b:.3f} over {len(points)} slices; whole kernel: "
                  f"{tokens / 1e6:,.0f}M tokens; CPU at {cpu:,.0f} tokens/s: {hours(tokens / cpu) if cpu else '?'}; "
                  f"GPU at {args.gpu_tokens_per_s:,.0f} tokens/s: {hours(tokens / args.gpu_tokens_per_s)}")
    plot(args, table, whole_tokens)
    return laws


def plot(args, table: dict, whole_tokens: int) -> None:
    """Tokens to each threshold against corpus tokens, log-log, with the fitted laws extended to the whole kernel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    markers = {0.99: "s", 0.999: "D", 1.0: "o"}
    for size in sorted({r["size"] for r in table.values()}):
        rows = sorted((r for r in table.values() if r["size"] == size), key=lambda r: r["corpus_tokens"])
        color = None
        for threshold in THRESHOLDS:
            points = fit_points(rows, threshold)
            if not points:
                continue
            label = f"size {size} ({rows[0]['parameters'] / 1e6:.1f}M): {100 * threshold:g}%"
            line = ax.plot(*zip(*points), markers[threshold], color=color,
                           fillstyle="full" if threshold == 1.0 else "none", label=label)[0]
            color = line.get_color()
            law = fit(points)
            if law:
                xs = [min(x for x, _ in points), whole_tokens]
                ax.plot(xs, [law[0] * x ** law[1] for x in xs], "--" if threshold == 1.0 else ":", color=color, lw=1)
        bounds = [r for r in rows if not r["reached"]]
        ax.plot([r["corpus_tokens"] for r in bounds], [r["tokens"] for r in bounds], "^", color=color)
    ax.axvline(whole_tokens, color="grey", lw=0.8)
    ax.text(whole_tokens, 0.02, " all of Linux 1.0", rotation=90, va="bottom", ha="right", color="grey",
            transform=ax.get_xaxis_transform())  # x in data, y in axes units: stays inside whatever the y range
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"corpus tokens (vocab {args.vocab})")
    ax.set_ylabel("training tokens (▲: 100% not reached, a lower bound)")
    ax.set_title("Memorizing slices of Linux 1.0: training tokens to 99%, 99.9%, 100% of body tokens")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(Path(args.work) / "scaling.png", dpi=110)
    print(f"plot: {Path(args.work) / 'scaling.png'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slices", default="lib,kernel,kmi", help=f"comma-separated: {', '.join(SLICES)}")
    parser.add_argument("--sizes", default="s,m", help=f"comma-separated model sizes: {', '.join(SIZES)}")
    parser.add_argument("--preset", default="demo", help="recipe (batch, stride, schedule) for every run; its decay "
                        "horizon is in epochs, so it scales with the slice, but needs enough steps: demo-kernel's 30 "
                        "epochs give lib/ 315 steps, 50 of them warm-up, and it stopped at 99.9%% (benchmark "
                        "memorize_kernel)")
    parser.add_argument("--check-epochs", type=float, default=2.0, help="epochs between memorization checks")
    parser.add_argument("--vocab", type=int, default=4096, help="tokenizer size for every slice")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per run (0: laam's default)")
    parser.add_argument("--budget", type=float, default=0, help="seconds per run before giving up (0: none)")
    parser.add_argument("--compress", action="store_true", help="also code each memorized slice with laam compress")
    parser.add_argument("--rerun", action="store_true", help="train again even if scaling.json has the run")
    parser.add_argument("--report-only", action="store_true", help="print the table and plot from scaling.json")
    parser.add_argument("--cpu-tokens-per-s", type=float, default=0, help="CPU rate for the projection "
                        "(default: the slowest rate the runs of that size made here)")
    parser.add_argument("--gpu-tokens-per-s", type=float, default=H200_TOKENS_PER_S)
    parser.add_argument("--adopt", action="append", default=[], metavar="SLICE-SIZE=RUN_DIR",
                        help="take an earlier `laam train` run folder of this recipe as that slice and size")
    parser.add_argument("--mirror", default=None, help="kernel mirror (default: $LAAM_MIRROR or ../shared/...)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "laam-bench-scaling"))
    args = parser.parse_args()
    args.mirror = mirror(args.mirror)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    store = work / "scaling.json"
    table = json.loads(store.read_text()) if store.is_file() else {}
    head = header("memorize_scaling")
    print(describe())
    for adopted in args.adopt:
        name, _, folder = adopted.partition("=")
        slice_name, size = name.rsplit("-", 1)
        facts = slice_facts(args, SLICES[slice_name])
        table = save(store, f"{name}-v{args.vocab}", {**summarize(Path(folder)), **facts, "slice": slice_name,
                                                      "size": size, "include": SLICES[slice_name], "adopted": folder})
    if not args.report_only:
        for name in args.slices.split(","):
            for size in args.sizes.split(","):
                key = f"{name}-{size}-v{args.vocab}"
                if key in table and not args.rerun:
                    continue
                include = SLICES[name]
                facts = slice_facts(args, include)
                result = train_run(args, name, include, size, facts["corpus_tokens"])
                table = save(store, key, {**result, **facts, "slice": name, "size": size, "include": include})
                r = table[key]
                print(f"{key}: {'100%' if r['reached'] else 'not reached'} after {r['tokens']:,} tokens, "
                      f"{r['seconds']:.0f} s", flush=True)
    whole_key = f"_whole-v{args.vocab}"
    if whole_key not in table:
        table = save(store, whole_key, slice_facts(args, []))
    whole = table[whole_key]
    runs = {k: v for k, v in table.items() if not k.startswith("_") and k.endswith(f"-v{args.vocab}")}
    laws = report(args, runs, whole["corpus_tokens"], whole["xz_bits"])
    write_result("memorize_scaling", {"vocab": args.vocab, "runs": runs, "whole_kernel": whole, "laws": laws}, head)


if __name__ == "__main__":
    main()
