"""Where a run's last wrong tokens are: every body token a model (or one of its run's checkpoints) still predicts
wrong under the window policy greedy generation uses, with its file and line, what it predicted instead, the
margin, and the longest run of tokens just before it that also occurs somewhere else in the corpus.

A short shared run means nothing outside the window makes the position hard: the model has to tell the place
apart from similar ones by what lies further back, or by counting (repeated lines that differ only in how many
terms they hold). A shared run as long as the whole context is an ambiguity no weights can resolve
(laam.train.ambiguity).

    PYTHONPATH=. python benchmarks/tail_errors.py RUN --cache CACHE [--checkpoint RUN/checkpoints/step-N] [--json]

With --json the list goes to benchmarks/results/tail_errors.json (benchmarks/harness.py); it is a diagnosis of one
run, so by default it is only printed.
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from harness import describe, header, write_result
from safetensors.torch import load_file

from laam.data.tokens import build_token_cache
from laam.engine.forcing import iter_margins
from laam.model.folder import load_model
from laam.model.info import load_training_corpus
from laam.train.batches import WindowSet


def shared_run(ids: np.ndarray, target: int, start: int, longest: int) -> int:
    """Length of the longest run ids[target-k:target] (not reaching before `start`, its record's first token)
    that also ends at another place of `ids`. Candidates are narrowed one token further back at a time."""
    candidates = np.arange(1, len(ids))  # places q whose run ends just before ids[q]
    candidates = candidates[candidates != target]
    k = 0
    while k < longest and target - k - 1 >= start and len(candidates):
        back = candidates - k - 1
        back_ok = back >= 0
        candidates = candidates[back_ok][ids[back[back_ok]] == ids[target - k - 1]]
        if len(candidates):
            k += 1
    return k


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path, help="a `laam train --out` folder (with model/ inside)")
    parser.add_argument("--cache", type=Path, required=True, help="the --cache the run was trained with")
    parser.add_argument("--checkpoint", type=Path, help="score this checkpoint's weights instead of RUN/model's")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="also write the list to results/tail_errors.json")
    args = parser.parse_args()
    head = header("tail_errors")
    print(describe())
    torch.set_num_threads(args.threads)
    folder = args.run / "model"
    if not (folder / "config.json").is_file():
        raise SystemExit(f"no model in {folder}: a run stopped by a signal writes none. `laam train` with the run's "
                         "settings and `--resume --max-steps STEP` (STEP: its newest checkpoint's) writes it without "
                         "training further; then pass --checkpoint for an older one.")
    loaded = load_model(folder, threads=args.threads)
    model, tokenizer, info = loaded.model, loaded.tokenizer, loaded.info
    if args.checkpoint:
        missing, unexpected = model.load_state_dict(load_file(str(args.checkpoint / "model.safetensors")), strict=False)
        if [m for m in missing if "lm_head" not in m] or unexpected:  # tied embeddings save no lm_head
            raise SystemExit(f"{args.checkpoint}: weights do not fit the model ({missing}, {unexpected})")
    corpus = load_training_corpus(info, args.cache)
    cache = build_token_cache(corpus, tokenizer, folder, args.cache)
    windows = WindowSet(cache, info.policy)
    wrong = []
    for batch in iter_margins(model, windows, tokenizer.pad_token_id):
        checked = (batch.body | batch.header_end).numpy()  # the body and the path's end, as the checks score them
        hits = np.nonzero(checked & (batch.margins.margin.numpy() < 0))[0]
        wrong += [(int(batch.records[i]), int(batch.positions[i]), float(batch.margins.margin[i]),
                   int(batch.margins.target[i]), int(batch.margins.predicted[i])) for i in hits]
    ids = np.asarray(cache.ids)
    body_tokens = int((cache.lengths - cache.body_starts).sum()) + int((windows.header_ends >= 0).sum())
    print(f"{args.checkpoint or folder}: {len(wrong)} checked tokens (bodies and path ends) wrong of {body_tokens:,} "
          f"(context {info.policy.context}, stride {info.policy.stride})")
    listed = []
    for record, position, margin, target, predicted in sorted(wrong):
        start = int(cache.offsets[record])
        at = start + position
        body = tokenizer.decode(cache.record(record)[cache.body_starts[record]:position].tolist())
        line = body.count("\n") + 1
        shared = shared_run(ids, at, start, info.policy.context)
        before = tokenizer.decode(ids[max(start, at - 8):at].tolist())
        print(f"  {cache.paths[record]}:{line}  after {before!r}: wants {tokenizer.decode([target])!r}, "
              f"predicts {tokenizer.decode([predicted])!r} (margin {margin:.2f}); shared run {shared} tokens")
        listed.append({"path": cache.paths[record], "line": line, "wants": tokenizer.decode([target]),
                       "predicts": tokenizer.decode([predicted]), "margin": margin, "shared_run": shared})
    for path, count in Counter(cache.paths[r] for r, *_ in wrong).most_common():
        print(f"{count:6} {path}")
    if args.json:
        write_result("tail_errors", {"run": str(args.checkpoint or folder), "body_tokens": body_tokens,
                                     "wrong": listed}, head)


if __name__ == "__main__":
    main()
