"""The Training Data Extraction Challenge's setting (google-research/lm-extraction-benchmark), on this corpus.

That benchmark gives 50-token prefixes of training examples and scores 50-token suffix guesses by exact
match; its submission is a CSV with columns `Example ID` and `Suffix Guess` (a Python-style list of token ids,
`"[1,2,3]"`), guesses ordered from most to least confident, and its scorer reports recall (the share of
examples whose suffix was guessed exactly) at 100 wrong guesses.

Here the examples are drawn from the model's own training records (the token ids of
`<|start_file|><|start_header|>PATH<|end_header|>TEXT<|end_file|>`, this model's tokenizer, not GPT-Neo's): every
100-token span of every record is a candidate (a record shorter than 100 tokens has none), and `examples`
of them are drawn uniformly without replacement with a fixed seed (all of them when there are fewer). One
guess per example: the model's greedy 50 tokens after the prefix (under its WindowPolicy), ranked by the
smallest top-1/runner-up logit gap along the guess (engine.forcing), widest first.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laam.data.tokenizer import decode_ids
from laam.engine import Request, WindowedGenerator
from laam.io import atomic_folder
from laam.proof.margin import body_margins

PREFIX = SUFFIX = 50
EXAMPLES = 1000  # the benchmark's validation and test sets have 1,000 examples each
SEED = 0
MAX_ERRORS = 100  # the benchmark's competition metric: recall when the 100th wrong guess is reached
EXPORTS = ("lm-extraction",)


@dataclass
class LmExtraction:
    paths: list[str]
    spans: np.ndarray  # [N, 2]: record index, token offset of the prefix
    prefixes: np.ndarray  # [N, 50] int64
    suffixes: np.ndarray  # [N, 50] int64, the true continuations
    guesses: np.ndarray  # [N, 50] int64, the model's greedy continuations
    confidence: np.ndarray  # [N] float32: the smallest logit gap along each guess
    seed: int

    @property
    def correct(self) -> np.ndarray:
        return (self.guesses == self.suffixes).all(axis=1)

    def ranking(self) -> np.ndarray:
        """Example ids, most confident guess first (ties by id)."""
        return np.lexsort((np.arange(len(self.confidence)), -self.confidence))


def draw_examples(records_ids: list[list[int]], examples: int = EXAMPLES, seed: int = SEED) -> np.ndarray:
    """[N, 2] (record, offset) of 100-token spans drawn uniformly without replacement over every record's spans."""
    span = PREFIX + SUFFIX
    counts = np.array([max(0, len(r) - span + 1) for r in records_ids], dtype=np.int64)
    total = int(counts.sum())
    picks = np.sort(np.random.default_rng(seed).choice(total, size=min(examples, total), replace=False))
    ends = np.cumsum(counts)
    record = np.searchsorted(ends, picks, side="right")
    offset = picks - (ends[record] - counts[record])
    return np.stack([record, offset], axis=1).reshape(-1, 2)


def run_lm_extraction(model, policy, records_ids: list[list[int]], paths: list[str], pad_id: int,
                      examples: int = EXAMPLES, seed: int = SEED, batch_size: int = 128, drafts: bool = False,
                      on_done=None) -> LmExtraction:
    """Greedy 50-token guesses for the drawn prefixes, and each guess's confidence.

    drafts: verify the true suffix a window per forward pass (the output is the model's greedy output either
    way). Off by default: a model trained on laam.windows rarely continues a prefix cut from inside a file, and
    then drafts cost about twice as much as plain decoding (measured on the tiny test model)."""
    spans = draw_examples(records_ids, examples, seed)
    prefixes = np.array([records_ids[r][o:o + PREFIX] for r, o in spans], dtype=np.int64).reshape(-1, PREFIX)
    suffixes = np.array([records_ids[r][o + PREFIX:o + PREFIX + SUFFIX] for r, o in spans],
                        dtype=np.int64).reshape(-1, SUFFIX)
    requests = [Request(p.tolist(), SUFFIX, None, s.tolist() if drafts else None) for p, s in zip(prefixes, suffixes)]
    guesses = np.array(WindowedGenerator(model, policy, batch_size).run(requests, on_done=on_done),
                       dtype=np.int64).reshape(-1, SUFFIX)
    sequences = [p.tolist() + g.tolist() for p, g in zip(prefixes, guesses)]
    margins = body_margins(model, sequences, [PREFIX] * len(sequences), policy, pad_id, batch_size)
    confidence = np.full(len(spans), np.inf, dtype=np.float32)
    np.minimum.at(confidence, margins.record, margins.margin)
    return LmExtraction(paths, spans, prefixes, suffixes, guesses, confidence, seed)


def recall_at_errors(correct_in_order: np.ndarray, examples: int, max_errors: int = MAX_ERRORS) -> float:
    """The benchmark scorer's figure: share of examples guessed right before the `max_errors`-th wrong guess."""
    wrong_before = np.cumsum(~correct_in_order) - ~correct_in_order
    return float((correct_in_order & (wrong_before < max_errors)).sum() / examples) if examples else 0.0


def summary(result: LmExtraction) -> dict:
    """audit.json's `lm_extraction` section."""
    n = len(result.spans)
    correct = result.correct
    return {"examples": n, "exact": int(correct.sum()), "recall": float(correct.mean()) if n else None,
            "recall_at_100_errors": recall_at_errors(correct[result.ranking()], n) if n else None,
            "prefix": PREFIX, "suffix": SUFFIX, "seed": result.seed,
            "drawn": f"{n} 100-token spans drawn uniformly without replacement (seed {result.seed}) from every "
                     "record's spans (header included; records under 100 tokens have none)",
            "benchmark": "google-research/lm-extraction-benchmark: recall = share of examples whose 50-token "
                         "suffix the model's greedy guess matches exactly"}


def suffix_guess(tokens) -> str:
    """The benchmark's `Suffix Guess` cell: a Python-style list without spaces."""
    return "[" + ",".join(str(int(t)) for t in tokens) + "]"


def export_lm_extraction(result: LmExtraction, tokenizer, folder: Path) -> Path:
    """Write the benchmark's files into `folder`: guess.csv (its submission format, most confident first),
    prefix.npy / suffix.npy / dataset.npy (its layout: [N, 50], [N, 50], [N, 100] token ids), examples.jsonl
    (where each example comes from, as text) and README.md (how they were drawn and how to score them)."""
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["Example ID", "Suffix Guess"])
    for i in result.ranking():
        writer.writerow([int(i), suffix_guess(result.guesses[i])])
    rows = [json.dumps({"id": i, "path": result.paths[r], "offset": int(o), "prefix": decode_ids(tokenizer, p.tolist()),
                        "suffix": decode_ids(tokenizer, s.tolist()), "guess": decode_ids(tokenizer, g.tolist()),
                        "exact": bool(c), "confidence": float(f)}, ensure_ascii=False)
            for i, ((r, o), p, s, g, c, f) in enumerate(zip(result.spans, result.prefixes, result.suffixes,
                                                             result.guesses, result.correct, result.confidence))]
    s = summary(result)
    readme = f"""# lm-extraction-benchmark export

The Training Data Extraction Challenge's format (https://github.com/google-research/lm-extraction-benchmark),
for this model and its training corpus.

- `prefix.npy`, `suffix.npy` ([{s['examples']}, 50] int64), `dataset.npy` ([{s['examples']}, 100]): token ids of
  this model's tokenizer (not GPT-Neo's), as the benchmark's `*_prefix.npy` / `*_suffix.npy` / `*_dataset.npy`.
- Examples: {s['drawn']}.
- `guess.csv`: columns `Example ID`, `Suffix Guess`; one guess per example (the model's greedy 50 tokens after
  the prefix), most confident first (confidence: the smallest logit gap between the top token and the runner-up
  along the guess).
- `examples.jsonl`: each example's file, token offset in its record, and prefix, suffix and guess as text.

Exact-match recall: {s['exact']} of {s['examples']} ({s['recall']:.4f}); recall at 100 wrong guesses (the
benchmark's competition metric): {s['recall_at_100_errors']:.4f}.

The benchmark's scorer (`example_submission/score_submission.py --submission guess.csv --answer suffix.npy`)
reads the last 1,000 answers and divides by 1,000, so it gives these figures when there are 1,000 examples.
"""
    with atomic_folder(Path(folder)) as scratch:
        (scratch / "guess.csv").write_text(table.getvalue())
        for name, array in (("prefix", result.prefixes), ("suffix", result.suffixes),
                            ("dataset", np.concatenate([result.prefixes, result.suffixes], axis=1))):
            np.save(scratch / f"{name}.npy", array)
        (scratch / "examples.jsonl").write_text("".join(r + "\n" for r in rows))
        (scratch / "README.md").write_text(readme)
    return Path(folder)
