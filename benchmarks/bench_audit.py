"""Benchmark: regeneration speed of laam.engine (batched, KV cache, sliding windows, draft verification)
against HF `generate` one file at a time, on a model shaped like the original LaaM "5M" model, and an
honest extrapolation to a full audit of Linux 1.0.

    PYTHONPATH=. python benchmarks/bench_audit.py [--files 32] [--max-tokens 2048] [--hf-files 3] [--threads N]

The model has random weights (speed does not depend on them), and a random model never ends a file, so each
sampled file is generated for as many tokens as its body has (capped at --max-tokens): the work a memorized
model does. Two regimes are measured:
  - decode: no draft, one token per step per row (what an unmemorized or half-memorized model costs);
  - memorized: the draft is this model's own greedy output from the decode run, i.e. a model that has
    memorized every token; each window is then verified in one forward pass. The outputs are compared
    (the output layer is scaled up so random near-ties, which float rounding could flip, are rare).
HF `generate` has no sliding window, so it is measured on files cut to the model's context. The
extrapolation multiplies the corpus's real token counts (a vocab-32768 tokenizer trained on Linux 1.0) by the
measured rates; it is an estimate, not a full run, and the machine is shared, so figures move between runs.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import torch
from harness import describe, header, tarball, write_result
from transformers import LlamaConfig, LlamaForCausalLM

from laam.data.corpus import CorpusConfig, load_corpus
from laam.data.records import END_FILE, path_prompt
from laam.data.tokenizer import decode_ids, encode_records, load_tokenizer, special_ids, train_tokenizer
from laam.engine import Request, WindowedGenerator
from laam.model.attention import attention_for
from laam.proof.audit import AuditConfig
from laam.proof.extraction import count_extraction_samples, extraction_metrics
from laam.proof.similarity import file_metrics
from laam.windows import WindowPolicy

CONTEXT, STRIDE = 512, 256


def original_5m(vocab: int, ids: dict) -> LlamaForCausalLM:
    config = LlamaConfig(vocab_size=vocab, hidden_size=64, intermediate_size=256, num_hidden_layers=8,
                         num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=CONTEXT,
                         bos_token_id=ids["<|start_file|>"], eos_token_id=ids["<|end_file|>"],
                         pad_token_id=ids["<|pad|>"], tie_word_embeddings=False)
    config._attn_implementation = attention_for(config)  # what laam.model.folder.load_model picks for this shape
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():  # random logits are nearly flat: sharpen them so float rounding cannot flip near-ties
        model.lm_head.weight.mul_(50.0)
    return model


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=32, help="files in the sample for laam.engine")
    parser.add_argument("--max-tokens", type=int, default=2048, help="tokens generated per sampled file at most")
    parser.add_argument("--hf-files", type=int, default=3, help="files generated one by one with HF generate")
    parser.add_argument("--batch-size", type=int, default=AuditConfig.batch_size)
    parser.add_argument("--extraction-samples", type=int, default=512, help="k=50 / Pythia windows measured")
    parser.add_argument("--every", type=int, default=AuditConfig.every, help="extraction offset step to extrapolate")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--tokenizer", type=Path, default=None, help="a vocab-32768 tokenizer of Linux 1.0 "
                        "(trained here when not given)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    head = header("bench_audit")
    print(f"{describe()}; {torch.get_num_threads()} threads")

    corpus = load_corpus(CorpusConfig(source=str(tarball())), progress=False)
    tokenizer_dir = args.tokenizer
    if tokenizer_dir is None:
        tokenizer_dir = Path(tempfile.mkdtemp()) / "tok"
        began = time.perf_counter()
        train_tokenizer(corpus, tokenizer_dir, vocab_size=32768)
        print(f"tokenizer trained in {time.perf_counter() - began:.1f} s")
    tokenizer = load_tokenizer(tokenizer_dir)
    ids = special_ids(tokenizer)
    model = original_5m(len(tokenizer), ids)
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters (original-5m shape, random weights)")

    prompts = encode_records(tokenizer, [path_prompt(f.path) for f in corpus.files])
    bodies = encode_records(tokenizer, [f.text + END_FILE for f in corpus.files])
    records = encode_records(tokenizer, corpus.records())
    total_body = sum(len(b) for b in bodies)
    print(f"Linux 1.0: {len(corpus.files)} files, {total_body:,} body tokens to regenerate")

    rng = random.Random(0)
    sample = rng.sample(range(len(corpus.files)), min(args.files, len(corpus.files)))
    lengths = {i: min(len(bodies[i]), args.max_tokens) for i in sample}

    # --- HF generate, one file at a time, within the context -----------------------------------------
    hf_tokens, hf_seconds = 0, 0.0
    model.set_attn_implementation("sdpa")  # stock transformers, as a user of HF generate would run it
    for i in sample[:args.hf_files]:
        n = min(lengths[i], CONTEXT - len(prompts[i]))
        x = torch.tensor([prompts[i]])
        began = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=n, min_new_tokens=n,
                                 do_sample=False, pad_token_id=ids["<|pad|>"])
        hf_seconds += time.perf_counter() - began
        hf_tokens += out.shape[1] - x.shape[1]
    hf_rate = hf_tokens / hf_seconds
    print(f"HF generate, one file at a time: {hf_tokens:,} tokens in {hf_seconds:.1f} s = {hf_rate:,.0f} tokens/s "
          f"({args.hf_files} files, each cut to the {CONTEXT}-token context)", flush=True)

    # --- laam.engine: decode, then memorized (drafts) ---------------------------------------------------
    model.set_attn_implementation(attention_for(model.config))
    order = sorted(sample, key=lambda i: -lengths[i])
    requests = [Request(prompts[i], lengths[i], None) for i in order]
    decode = WindowedGenerator(model, WindowPolicy(CONTEXT, STRIDE), args.batch_size)
    outputs = decode.run(requests)
    rate = decode.stats.tokens / decode.stats.seconds
    print(f"laam.engine decode, batch {args.batch_size}: {decode.stats.tokens:,} tokens in "
          f"{decode.stats.seconds:.1f} s = {rate:,.0f} tokens/s ({len(sample)} files of up to {args.max_tokens} "
          f"tokens, {decode.stats.refills} window reads); {rate / hf_rate:.1f}x HF generate", flush=True)
    memorized = WindowedGenerator(model, WindowPolicy(CONTEXT, STRIDE), args.batch_size)
    again = memorized.run([Request(r.prompt, r.max_new_tokens, None, out) for r, out in zip(requests, outputs)])
    same = sum(a == b for x, y in zip(again, outputs) for a, b in zip(x, y))
    fast = memorized.stats.tokens / memorized.stats.seconds
    print(f"laam.engine memorized (drafts verified): {memorized.stats.tokens:,} tokens in "
          f"{memorized.stats.seconds:.1f} s = {fast:,.0f} tokens/s; {memorized.stats.drafted:,} tokens from "
          f"verified drafts; {same:,} of {decode.stats.tokens:,} tokens equal to decoding, "
          f"{sum(x == y for x, y in zip(again, outputs))} of {len(outputs)} files; {fast / hf_rate:.0f}x HF generate",
          flush=True)

    began = time.perf_counter()
    for i, out in zip(order, outputs):
        data = decode_ids(tokenizer, out).encode("utf-8", "surrogateescape")
        file_metrics(corpus.files[i].data, data, bodies[i], out)
    metric_rate = decode.stats.tokens / (time.perf_counter() - began)

    # --- extraction windows (50+50 and 32+32), decode and memorized ---------------------------------------
    subset = [records[i] for i in sample]
    every = max(1, count_extraction_samples(subset, 50, 32, 1) // args.extraction_samples)
    probe = WindowedGenerator(model, WindowPolicy(CONTEXT, STRIDE), max(args.batch_size, 128))
    extraction_metrics(probe, subset, 50, 32, every, drafts=False)
    extraction_rate = probe.stats.tokens / probe.stats.seconds
    print(f"extraction windows, decode: {probe.stats.tokens:,} tokens in {probe.stats.seconds:.1f} s = "
          f"{extraction_rate:,.0f} tokens/s", flush=True)

    # --- extrapolation to all of Linux 1.0 -----------------------------------------------------------------
    samples = count_extraction_samples(records, 50, 32, args.every)
    extraction_tokens = sum(len(range(0, len(r) - 2 * n + 1, args.every)) * n for r in records for n in (50, 32))
    metrics_minutes = total_body / metric_rate / 60
    extraction_minutes = extraction_tokens / extraction_rate / 60
    estimates = {}
    for name, r in (("memorized model (drafts accepted)", fast), ("unmemorized model (decode)", rate)):
        regen = total_body / r / 60
        estimates[name] = regen + extraction_minutes + metrics_minutes
        print(f"estimate, whole Linux 1.0 audit, {name}: regeneration {regen:.1f} min + extraction "
              f"<= {extraction_minutes:.1f} min ({samples:,} samples, every {args.every} tokens) + metrics "
              f"{metrics_minutes:.1f} min = {estimates[name]:.1f} min (goal <= 15)")
    print(f"with HF generate one file at a time, regeneration alone: {total_body / hf_rate / 60:.0f} min")
    write_result("bench_audit", {
        "threads": torch.get_num_threads(), "files": len(sample), "max_tokens": args.max_tokens,
        "tokens_per_s": {"hf_generate": hf_rate, "engine_decode": rate, "engine_memorized": fast,
                         "extraction_decode": extraction_rate, "metrics": metric_rate},
        "memorized_equal_tokens": same, "whole_kernel_minutes": estimates,
        "hf_generate_regeneration_minutes": total_body / hf_rate / 60}, head)


if __name__ == "__main__":
    main()
