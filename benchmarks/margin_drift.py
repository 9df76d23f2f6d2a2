"""How far logits move between fp32 and the other ways a model folder gets run: the measurement behind
`--min-margin`'s default (laam.engine.forcing.MIN_MARGIN).

For every body token of a model's training corpus, under the WindowPolicy context (each training window read
once, as greedy regeneration reads it), the logits in fp32 (transformers, the reference) are compared with:
  - bf16 autocast (torch.autocast on CPU; laam's own bf16 path on CUDA),
  - bf16 weights (the model loaded with dtype=torch.bfloat16, every matmul in bf16),
  - GGUF f32, f16 (`laam export gguf --dtype`), and q8_0 (llama.cpp's own quantizer, llama_model_quantize,
    on the f32 file) run by llama-cpp-python with its default (f16) KV cache.
Per variant: the largest |logit change| over every body position and vocabulary entry, the largest change
of a body token's margin (true logit - best other, laam.engine.forcing.token_margins), the smallest margin,
and the body tokens the variant gets wrong (a flipped greedy choice).

    PYTHONPATH=. python benchmarks/margin_drift.py MODEL_DIR [MODEL_DIR ...] --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from harness import describe, header, write_result

from laam.data.records import END_HEADER
from laam.data.tokenizer import encode_records, special_ids
from laam.engine.forcing import token_margins, window_logits
from laam.model.folder import load_model
from laam.model.info import load_training_corpus


def torch_logits(model, records, starts, policy, context=contextlib.nullcontext) -> np.ndarray:
    """[body tokens, vocab] fp32 logits, body tokens of every record in order (laam.engine.forcing.window_logits)."""
    out = []
    with context():
        for ids, start in zip(records, starts):
            for first, logits in window_logits(model, ids, policy):
                positions = np.arange(first, first + len(logits))
                out.append(logits.float().numpy()[positions >= start])
    return np.concatenate(out)


def gguf_logits(path: Path, records, starts, policy, threads: int) -> np.ndarray:
    """The same logits from llama.cpp: each window evaluated from an empty KV cache at position 0
    (laam.proof.equivalence.gguf_body_logits, which the equivalence matrix's margins use too)."""
    import llama_cpp

    from laam.proof.equivalence import gguf_body_logits

    llm = llama_cpp.Llama(model_path=str(path), n_ctx=policy.context, n_batch=policy.context, n_threads=threads,
                          logits_all=True, verbose=False)
    return gguf_body_logits(llm, records, starts, policy)


def quantize_q8_0(source: Path, target: Path, threads: int) -> Path:
    """llama.cpp's own quantizer (what its llama-quantize tool runs), its per-tensor log silenced."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0
    params.nthread = threads
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            failed = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), params)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    if failed:
        raise SystemExit(f"llama.cpp could not quantize {source} to q8_0")
    return target


def drift(reference: np.ndarray, other: np.ndarray, targets: torch.Tensor) -> dict:
    ref = token_margins(torch.from_numpy(reference), targets)
    new = token_margins(torch.from_numpy(other), targets)
    return {"max_logit_change": float(np.abs(other - reference).max()),
            "max_margin_change": float((new.margin - ref.margin).abs().max()),
            "min_margin": float(new.margin.min()), "wrong": int((~new.correct).sum())}


def measure(model_dir: Path, cache, threads: int, work: Path) -> list[tuple[str, dict]]:
    from transformers import AutoModelForCausalLM

    from laam.publish.gguf import export_gguf

    loaded = load_model(model_dir, threads=threads)
    corpus = load_training_corpus(loaded.info, cache)
    records = encode_records(loaded.tokenizer, [f.record for f in corpus.files])
    end_header = special_ids(loaded.tokenizer)[END_HEADER]
    starts = [r.index(end_header) + 1 for r in records]
    targets = torch.tensor([t for r, s in zip(records, starts) for t in r[s:]])
    policy = loaded.policy
    fp32 = torch_logits(loaded.model, records, starts, policy)
    assert len(fp32) == len(targets)
    rows = [("fp32 (reference)", drift(fp32, fp32, targets))]
    rows.append(("bf16 autocast", drift(fp32, torch_logits(
        loaded.model, records, starts, policy, lambda: torch.autocast("cpu", dtype=torch.bfloat16)), targets)))
    bf16 = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.bfloat16).eval()
    rows.append(("bf16 weights", drift(fp32, torch_logits(bf16, records, starts, policy), targets)))
    f32 = export_gguf(model_dir, work / f"{model_dir.name}-f32.gguf", "f32").path
    f16 = export_gguf(model_dir, work / f"{model_dir.name}-f16.gguf", "f16").path
    q8 = quantize_q8_0(f32, work / f"{model_dir.name}-q8_0.gguf", threads)
    for name, path in (("GGUF f32", f32), ("GGUF f16", f16), ("GGUF q8_0", q8)):
        rows.append((name, drift(fp32, gguf_logits(path, records, starts, policy, threads), targets)))
    print(f"\n{model_dir}: {len(corpus.files)} files, {len(targets):,} body tokens, context {policy.context}, "
          f"stride {policy.stride}")
    print(f"{'variant':<18} {'max |Δ logit|':>14} {'max |Δ margin|':>15} {'min margin':>11} {'wrong':>6}")
    for name, r in rows:
        print(f"{name:<18} {r['max_logit_change']:>14.4f} {r['max_margin_change']:>15.4f} {r['min_margin']:>11.4f} "
              f"{r['wrong']:>6}")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, help="model folders (laam train's RUN/model)")
    parser.add_argument("--cache", type=Path, default=None, help="laam cache holding the models' corpora")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    head = header("margin_drift")
    print(f"{describe()}; {args.threads} thread(s)")
    largest, models = 0.0, {}
    with tempfile.TemporaryDirectory() as work:
        for model_dir in args.models:
            models[str(model_dir)] = dict(measure(model_dir, args.cache, args.threads, Path(work)))
            largest = max([largest, *(r["max_margin_change"] for r in models[str(model_dir)].values())])
    print(f"\nlargest margin change over every model and variant: {largest:.4f} logits")
    write_result("margin_drift", {"threads": args.threads, "models": models, "largest_margin_change": largest}, head)


if __name__ == "__main__":
    main()
