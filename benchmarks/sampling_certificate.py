"""The sampling certificate (laam.proof.sampling) against real sampling with stock transformers.

For each selected file of a laam model folder whose record fits in the context (there stock `generate` reads
exactly what laam's window reads), and each temperature: the predicted probability that sampling from the
path prompt returns the file verbatim, and the count of verbatim files in N samples drawn by stock
`model.generate(do_sample=True, ...)`, with the Wilson 99.9% interval of the observed share. Prints the table and
writes it through benchmarks/harness.py (benchmarks/results/sampling_certificate.json unless --out).

    PYTHONPATH=. python benchmarks/sampling_certificate.py MODEL --samples 400 --temperatures 0.2,1,1.5,2,3 \
        --out benchmarks/results/sampling_certificate.json
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from harness import header, write_result

from laam.data.corpus import select_files
from laam.data.records import END_FILE, path_prompt
from laam.data.tokenizer import encode_records, special_ids
from laam.model.folder import load_model
from laam.model.info import load_training_corpus
from laam.proof.sampling import SamplingSetting, verbatim_log_probability

Z = 3.29  # two-sided 99.9%


def wilson(successes: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval (written out: scipy is not a dependency)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def observe(model, prompt: list[int], target: list[int], setting: SamplingSetting, n: int, seed: int,
            batch: int = 200) -> int:
    """Verbatim samples among n drawn by stock transformers' generate."""
    torch.manual_seed(seed)
    hits = 0
    with torch.inference_mode():
        for start in range(0, n, batch):
            rows = min(batch, n - start)
            out = model.generate(torch.tensor([prompt] * rows), attention_mask=torch.ones(rows, len(prompt),
                                 dtype=torch.long), do_sample=True, temperature=setting.temperature,
                                 top_k=setting.top_k or 0, top_p=setting.top_p or 1.0, max_new_tokens=len(target))
            hits += sum(r[len(prompt):len(prompt) + len(target)].tolist() == target for r in out)
    return hits


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path)
    parser.add_argument("--files", action="append", help="globs of corpus paths (default: every file that fits)")
    parser.add_argument("--max-files", type=int, default=6)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--temperatures", default="0.2,1,1.5,2,3")
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    head = header("sampling_certificate")
    loaded = load_model(args.model, threads=args.threads)
    corpus = load_training_corpus(loaded.info, args.cache)
    stop = special_ids(loaded.tokenizer)[END_FILE]
    rows, chosen = [], []
    for f in select_files(corpus.files, args.files):
        prompt, body = encode_records(loaded.tokenizer, [path_prompt(f.path), f.text])
        if len(prompt) + len(body) + 1 <= loaded.policy.context and len(chosen) < args.max_files:
            chosen.append((f, prompt, body + [stop]))
    for f, prompt, target in chosen:
        for t in (float(x) for x in args.temperatures.split(",")):
            setting = SamplingSetting(f"T{t:g}", False, t, args.top_k or None, args.top_p)
            [log_p] = verbatim_log_probability(loaded.model, prompt + target, len(prompt), loaded.policy, [setting])
            hits = observe(loaded.model, prompt, target, setting, args.samples, seed=len(rows))
            low, high = wilson(hits, args.samples)
            p = math.exp(log_p)
            rows.append({"path": f.path, "tokens": len(target), "temperature": t, "top_k": args.top_k,
                         "top_p": args.top_p, "predicted": p, "observed": hits, "samples": args.samples,
                         "interval_99_9": [low, high], "agrees": low <= p <= high})
            print(f"{f.path:<32} T {t:<4g} predicted {p:.4f}  observed {hits:>4}/{args.samples} "
                  f"[{low:.3f}, {high:.3f}] {'agrees' if low <= p <= high else 'DISAGREES'}", flush=True)
    figures = {"model": str(args.model), "rows": rows, "agree": sum(r["agrees"] for r in rows), "checked": len(rows)}
    print(f"{figures['agree']} of {figures['checked']} predictions inside the observed 99.9% interval")
    write_result("sampling_certificate", figures, head, args.out)


if __name__ == "__main__":
    main()
