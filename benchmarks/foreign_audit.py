"""Time `laam audit --model ANY` on a whole kernel release with a ~25M-parameter model of another architecture.

A GPT-2 (6 layers, 512 wide, 8 heads, 1,024 positions, tied embeddings) with its own byte-level BPE (16,384
entries, trained here on the corpus) is saved with random weights, then audited with prefix prompts at two
offsets per file and 64 new tokens (the carlini-100 setting: 100-token prefix, 64-token continuation), every
continuation traced. Random weights are fine for timing: the work per prompt does not depend on them.
Writes its figures through benchmarks/harness.py (benchmarks/results/foreign_audit.json unless --out), with the
process's CPU seconds (getrusage user + system), which count the work where wall time on a shared machine does not.

    PYTHONPATH=. python benchmarks/foreign_audit.py --threads 2 --out benchmarks/results/foreign_audit.json

On a shared machine, measure on a subset (--subset 40: 40 files spread over the release, 74 of the 1,038
continuations) with one thread, or with OMP_WAIT_POLICY=PASSIVE: with other processes on the cores, OpenMP's
threads spin waiting for each other and the CPU seconds of two active threads count that spinning. --keep writes
the audit's report (continuations.csv) to compare two versions' continuations.
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

import torch
from harness import header, tarball, write_result

from laam.data.corpus import CorpusConfig, load_corpus
from laam.proof.foreign import ForeignAuditConfig, audit_any_model


def build(corpus, folder: Path, vocab: int) -> int:
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator([f.text for f in corpus.files], vocab_size=vocab, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>",
                                        eos_token="<|endoftext|>")
    tokenizer.save_pretrained(str(folder))
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=1024, n_embd=512, n_layer=6,
                                       n_head=8, bos_token_id=tokenizer.eos_token_id,
                                       eos_token_id=tokenizer.eos_token_id))
    model.save_pretrained(str(folder))
    return sum(p.numel() for p in model.parameters())


def cpu_seconds() -> float:
    """User + system CPU time of this process: on a shared machine it counts the work, wall time does not."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def subset(corpus, count: int) -> list[str] | None:
    """`count` file paths spread evenly over the release (small and large files, every folder), or None for all."""
    if count <= 0 or count >= len(corpus.files):
        return None
    step = len(corpus.files) / count
    return [corpus.files[int(i * step)].path for i in range(count)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=None, help="release (default: Linux 1.0 in the kernel mirror)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--vocab", type=int, default=16384)
    parser.add_argument("--setting", default="carlini-100")
    parser.add_argument("--offsets", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--subset", type=int, default=0,
                        help="audit only this many files, evenly spaced over the release (0: all of them)")
    parser.add_argument("--keep", type=Path, default=None,
                        help="write the audit's report there (to compare continuations between versions)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    head = header("foreign_audit")  # the load average as the benchmark starts
    corpus = load_corpus(CorpusConfig(source=args.source or str(tarball())), progress=False)
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "model"
        began = time.perf_counter()
        parameters = build(corpus, folder, args.vocab)
        built = time.perf_counter() - began
        began, cpu_before = time.perf_counter(), cpu_seconds()
        config = ForeignAuditConfig(settings=(args.setting,), offsets=args.offsets, batch_size=args.batch_size)
        audit, _ = audit_any_model(str(folder), corpus, config, args.keep or Path(work) / "audit",
                                   files=subset(corpus, args.subset), threads=args.threads)
        seconds = time.perf_counter() - began
        cpu = cpu_seconds() - cpu_before
    s, g = audit["summary"], audit["settings"][args.setting]
    figures = {"cpu_seconds": cpu_seconds(), "audit_cpu_seconds": cpu, "corpus": corpus.name, "files": s["files"],
              "parameters": parameters,
              "setting": args.setting, "offsets": args.offsets, "continuations": g["samples"],
              "new_tokens": audit["timing"]["new_tokens"], "forward_tokens": audit["timing"]["forward_tokens"],
              "build_seconds": built, "audit_seconds": seconds,
              "generation_seconds": audit["timing"]["generation_seconds"], "caught_files": s["caught_files"],
              "threads": args.threads, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    write_result("foreign_audit", figures, head, args.out)


if __name__ == "__main__":
    main()
