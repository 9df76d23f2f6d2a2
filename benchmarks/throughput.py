"""Benchmark 1: training throughput, the original LaaM's way (HF Trainer) against `laam train`, same model.

Baseline: HF `Trainer` on `LlamaForCausalLM` (original-5m shape: hidden 64, 8 layers, 32 heads, vocab 32768),
each file's tokens cut into 512-token chunks, each chunk left-padded to 512 with the pad id, pad ids also in
the labels — as the original did (/work/shared/ORIGINAL.md). Its own setting is bf16 under
`accelerate launch`, which on CPU means 1 thread; its best CPU setting is float32 with all threads.
LaaM: the engine on the same model and corpus, stride = context (non-overlapping 512-token windows, like the
original's chunks, so each token is processed once per epoch), float32, all threads, allocator settings.
Both sides report non-pad tokens per second of training steps (first `--warmup` steps excluded). Besides the
ratios against the original's own and best settings, the like-for-like ratios compare both sides in float32 at
the same thread count (1, and all cores).

    PYTHONPATH=. python benchmarks/throughput.py --steps 6
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import ROOT, describe, header, read_run, tarball, write_result

ALLOCATOR = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": "100000000000"}


def corpus(include):
    from laam.data.corpus import CorpusConfig, load_corpus

    return load_corpus(CorpusConfig(source=str(tarball()), filter="original", include=tuple(include)), progress=False)


def tokenizer_dir(args) -> Path:
    from laam.data.tokenizer import train_tokenizer

    folder = Path(args.work) / f"tokenizer-{args.vocab}"
    if not (folder / "tokenizer.json").is_file():
        train_tokenizer(corpus(args.include), folder, args.vocab)
    return folder


def baseline(args) -> dict:
    """HF Trainer, left-padded 512-token chunks, pad in the labels."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from laam.data.tokenizer import encode_records, load_tokenizer, special_ids

    torch.set_num_threads(args.threads)
    tok = load_tokenizer(args.tokenizer)
    pad = special_ids(tok)["<|pad|>"]
    rows = []
    for ids in encode_records(tok, corpus(args.include).records()):
        for i in range(0, len(ids), 512):
            chunk = ids[i:i + 512]
            padded = [pad] * (512 - len(chunk)) + chunk
            rows.append({"input_ids": padded, "attention_mask": [0] * (512 - len(chunk)) + [1] * len(chunk),
                         "labels": padded})
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=256, num_hidden_layers=8,
                         num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=512,
                         tie_word_embeddings=False, pad_token_id=pad)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)

    class Timer(TrainerCallback):
        def __init__(self):
            self.times, self.start = [], None

        def on_step_begin(self, *a, **k):
            self.start = time.perf_counter()

        def on_step_end(self, *a, **k):
            self.times.append(time.perf_counter() - self.start)

    timer = Timer()
    targs = TrainingArguments(output_dir=str(Path(args.work) / "hf"), per_device_train_batch_size=args.batch,
                              max_steps=args.steps + args.warmup, learning_rate=1e-3, weight_decay=0.1,
                              warmup_steps=100, bf16=args.bf16, use_cpu=True, report_to=[], save_strategy="no",
                              logging_steps=1000, dataloader_drop_last=True, seed=0, disable_tqdm=True)
    trainer = Trainer(model=model, args=targs, train_dataset=rows, callbacks=[timer])
    order = list(trainer.get_train_dataloader())  # the same batches the Trainer will draw (fixed seed)
    trainer.train()
    timed = timer.times[args.warmup:]
    nonpad = sum(int(b["attention_mask"].sum()) for b in order[args.warmup:args.warmup + len(timed)])
    return {"tokens_per_s": nonpad / sum(timed), "steps": len(timed), "seconds": sum(timed)}


def laam(args) -> dict:
    """The engine on the same model, stride = context, --batch windows per step."""
    import torch

    from laam.model.config import ModelConfig
    from laam.model.presets import PRESETS
    from laam.train.config import TrainConfig
    from laam.train.loop import train

    model = ModelConfig(**{**PRESETS["original-5m"]["model"], "stride": 512, "vocab_size": args.vocab,
                           "precision": "bf16" if args.bf16 else "float32"})
    config = TrainConfig(batch_size=args.batch, lr=1e-3, warmup_steps=100, max_steps=args.steps + args.warmup,
                         eval_every=0, save_every=0, log_every=1, threads=args.threads, until_memorized=False,
                         final_check=False)
    run = Path(tempfile.mkdtemp(dir=args.work))
    train(model, config, corpus(args.include), args.tokenizer, run, Path(args.work) / "cache", progress=False)
    rows = read_run(run).steps
    start, end = rows[args.warmup - 1], rows[-1]
    del torch
    return {"tokens_per_s": (end["tokens"] - start["tokens"]) / (end["train_seconds"] - start["train_seconds"]),
            "steps": end["step"] - start["step"], "seconds": end["train_seconds"] - start["train_seconds"]}


def run_side(args, side: str, bf16: bool, threads: int, allocator: bool) -> dict:
    """Each measurement in a fresh process (thread count and allocator settings are per process)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    if allocator:
        env.update(ALLOCATOR)
    cmd = [sys.executable, __file__, "--side", side, "--threads", str(threads), "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--batch", str(args.batch), "--vocab", str(args.vocab), "--work", args.work,
           "--tokenizer", str(args.tokenizer), *[f"--include={i}" for i in args.include]] + (["--bf16"] if bf16 else [])
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{side} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=1, help="untimed first steps")
    parser.add_argument("--batch", type=int, default=8, help="512-token rows per step (the original measured 8)")
    parser.add_argument("--vocab", type=int, default=32768)
    parser.add_argument("--include", action="append", default=[], help="corpus subset (default: all of 1.0)")
    parser.add_argument("--work", default=str(Path(tempfile.gettempdir()) / "laam-bench-throughput"))
    parser.add_argument("--side", choices=["hf", "laam"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--bf16", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer", help=argparse.SUPPRESS)
    args = parser.parse_args()
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if args.side:
        args.tokenizer = Path(args.tokenizer)
        print(json.dumps((baseline if args.side == "hf" else laam)(args)))
        return
    args.tokenizer = tokenizer_dir(args)
    cores = os.cpu_count() or 1
    head = header("throughput")
    print(describe())
    print(f"{cores} cores; torch threads per side as listed; corpus {args.include or 'all of Linux 1.0'} "
          f"(filter original); batch {args.batch} x 512; {args.steps} timed steps after {args.warmup}")
    plan = [("original, its own setting (bf16, accelerate launch: 1 thread)", "hf", True, 1, False),
            ("original, float32, 1 thread", "hf", False, 1, False),
            (f"original, float32, {cores} threads (its best)", "hf", False, cores, False),
            (f"laam train, bf16, {cores} threads", "laam", True, cores, True),
            (f"laam train, float32, {cores} threads", "laam", False, cores, True),
            ("laam train, float32, 1 thread", "laam", False, 1, True)]
    results = {}
    for name, side, bf16, threads, allocator in plan:
        results[name] = run_side(args, side, bf16, threads, allocator)
        print(f"{name:<62} {results[name]['tokens_per_s']:>9,.0f} non-pad tokens/s "
              f"({results[name]['steps']} steps, {results[name]['seconds']:.1f} s)", flush=True)
    names = list(results)
    own, best = results[names[0]]["tokens_per_s"], max(results[n]["tokens_per_s"] for n in names[:3])
    ours = results[names[4]]["tokens_per_s"]
    ours_bf16 = results[names[3]]["tokens_per_s"]
    print(f"ratio laam float32 / original's own setting: {ours / own:.2f}x (goal >= 5x)")
    print(f"ratio laam float32 / original's best setting: {ours / best:.2f}x (goal >= 2x)")
    print(f"ratio laam bf16 / original bf16: {ours_bf16 / own:.2f}x")
    one = results[names[5]]["tokens_per_s"] / results[names[1]]["tokens_per_s"]
    print(f"like for like, float32, 1 thread each: laam / original {one:.2f}x")
    many = ours / results[names[2]]["tokens_per_s"]
    print(f"like for like, float32, {cores} threads each: laam / original {many:.2f}x")
    write_result("throughput", {"include": args.include, "batch": args.batch, "steps": args.steps,
                                "warmup": args.warmup, "vocab": args.vocab, "sides": results,
                                "ratios": {"laam_float32_over_original_own": ours / own,
                                           "laam_float32_over_original_best": ours / best,
                                           "laam_bf16_over_original_bf16": ours_bf16 / own,
                                           "like_for_like_1_thread": one, f"like_for_like_{cores}_threads": many}},
                 head)


if __name__ == "__main__":
    main()
