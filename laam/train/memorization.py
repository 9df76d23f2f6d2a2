"""The memorization checks of a training run.

`measure_memorization` (during training): teacher-forced greedy accuracy over every window, each target
seen exactly as greedy generation under the WindowPolicy sees it, so 100% means every body token comes
back when the file is regenerated from its path, up to float rounding at near-ties. The checked tokens are
each file's body and the `<|end_header|>` that ends its path (a decoder that is given only the bare path, as
a reader's pipeline or llama.cpp is, needs the model to end it), except after a path that is a prefix of
another's, which no model can end and every decoder ends itself (data.records.prefix_paths). Each target's margin
(engine.forcing: true logit minus the best other) says how near: `--min-margin` asks every body token to be
right by at least that much, so that another dtype or batch shape cannot flip it. `verify_records`
(`--verify`, after training) regenerates every file with the decoding engine and compares it with the file's
real bytes. Both decode or force through engine/ (engine.forcing.iter_margins: the one batched
teacher-forcing loop, which the audit's margin certificate runs too).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch

from laam.data.records import END_FILE, END_HEADER, generated_bytes, path_prompt, prefix_paths
from laam.data.tokenizer import decode_ids, encode_records, special_ids
from laam.engine import Request, WindowedGenerator
from laam.engine.forcing import iter_margins
from laam.train.batches import WindowSet
from laam.windows import WindowPolicy

NO_WRONG = np.iinfo(np.int64).max  # measure_memorization's first_wrong for a file with every body token right


def measure_memorization(model, window_set: WindowSet, pad_id: int, batch_size: int = 64, rank: int = 0,
                         world: int = 1, device=None, autocast=None, min_margin: float = 0.0) -> dict:
    """Teacher-forced greedy next-token accuracy over every window (each target seen exactly as greedy
    generation sees it, see laam.windows). Body = tokens after <|end_header|>, which a path prompt must bring
    back, counted with the `<|end_header|>` that ends each path (ForcedBatch.header_end); the path's own tokens
    (which file comes next) are not predictable. Returns this process's counts (body tokens
    right by at least `min_margin` in `body_secure`), its smallest body margin, per file the record position of
    the first wrong body token this process saw (NO_WRONG if none), and per window (0 for windows another
    process measured) its wrong body tokens and smallest body margin (+inf without body targets): the
    error-focused sampler's input (WindowSampler)."""
    counts = torch.zeros(5, dtype=torch.long)
    lowest = float("inf")
    first_wrong = np.full(len(window_set.cache.paths), NO_WRONG, dtype=np.int64)
    window_wrong = np.zeros(len(window_set), dtype=np.int64)
    window_margin = np.zeros(len(window_set))
    window_margin[np.arange(rank, len(window_set), world)] = np.inf
    for forced in iter_margins(model, window_set, pad_id, batch_size, rank, world, device, autocast):
        correct, margin = forced.margins.correct, forced.margins.margin
        body = forced.body | forced.header_end  # every token a bare path must bring back
        secure = correct & (margin >= min_margin)
        counts += torch.tensor([int(correct[body].sum()), int(body.sum()), int(correct.sum()), len(correct),
                                int(secure[body].sum())])
        if body.any():
            lowest = min(lowest, float(margin[body].min()))
        missed = (~correct & body).numpy()
        np.minimum.at(first_wrong, forced.records[missed], forced.positions[missed])
        in_body = body.numpy()
        np.add.at(window_wrong, forced.windows[in_body], (~correct[body]).numpy().astype(np.int64))
        np.minimum.at(window_margin, forced.windows[in_body], margin[body].double().numpy())
    model.train()
    return {"body_correct": int(counts[0]), "body_total": int(counts[1]), "all_correct": int(counts[2]),
            "all_total": int(counts[3]), "body_secure": int(counts[4]), "min_margin": lowest,
            "first_wrong": torch.from_numpy(first_wrong), "window_wrong": torch.from_numpy(window_wrong),
            "window_margin": torch.from_numpy(window_margin)}


def summarize(counts: dict) -> dict:
    """Shares from summed counts: `memorized` (body tokens right), `secure` (right by at least --min-margin)."""
    lowest = counts.get("min_margin")
    return {**counts, "memorized": counts["body_correct"] / max(1, counts["body_total"]),
            "secure": counts.get("body_secure", counts["body_correct"]) / max(1, counts["body_total"]),
            "accuracy": counts["all_correct"] / max(1, counts["all_total"]),
            "min_margin": None if lowest is None or lowest == float("inf") else round(lowest, 4)}


def reached(memo: dict, target: float) -> bool:
    """`--until-memorized`'s stop rule: a `target` share of body tokens right by at least `--min-margin` (with
    --min-margin 0, simply right)."""
    return bool(memo) and memo.get("secure", memo["memorized"]) >= target


@dataclass
class RegenerationReport:
    files: int
    exact: int
    tokens: int  # body tokens checked (with each <|end_header|> the model had to give)
    wrong: dict[str, int] = field(default_factory=dict)  # path -> first wrong position in its record
    not_regenerated: int = 0  # files of `wrong` taken from a memorization check instead of regenerated


def verify_records(model, files, policy: WindowPolicy, tokenizer, batch_size: int = 64,
                   known_wrong: dict[str, int] | None = None) -> RegenerationReport:
    """Regenerate every corpus file (data.corpus.CorpusFile) from its bare path and compare with its real bytes:
    the model must end the path with `<|end_header|>` (given in the prompt only after a path that is a prefix of
    another's, data.records.prefix_paths), then give the body and `<|end_file|>`.

    Prompts and expected tokens are encoded from the files themselves (the bytes the archive held, whose SHA-256
    the manifest records), never read from the token cache, so a damaged cache cannot make a file look exact;
    a file is exact when the model ends it and its bytes have the file's SHA-256. Each request stops at its
    first token that differs from the file's (Request.until_divergence), so a file that is not memorized costs
    little more than one that is. known_wrong: files a memorization check of these same weights found a wrong
    body token in (path -> its position), reported wrong without regenerating them: greedy decoding repeats the
    check's context up to that token, so it cannot come out exact (barring a float near-tie; the count is then
    conservative). On a run stopped early that skips most of the work."""
    known_wrong = known_wrong or {}
    stop = special_ids(tokenizer)[END_FILE]
    # the bare path, whose <|end_header|> the model must give, except after a path that is a prefix of another's
    prefixes = prefix_paths(f.path for f in files)
    ends = [f.path not in prefixes for f in files]
    prompts = encode_records(tokenizer, [path_prompt(f.path).removesuffix(END_HEADER) if end else path_prompt(f.path)
                                         for f, end in zip(files, ends)])
    # each file's body and its end, after the <|end_header|> the model gives
    bodies = encode_records(tokenizer, [(END_HEADER if end else "") + f.text + END_FILE for f, end in zip(files, ends)])
    todo = [i for i, f in enumerate(files) if f.path not in known_wrong]
    requests = [Request(prompts[i], len(bodies[i]), stop, bodies[i], until_divergence=True) for i in todo]
    outputs = dict(zip(todo, WindowedGenerator(model, policy, batch_size).run(requests)))
    wrong = {}
    for i, f in enumerate(files):
        if f.path in known_wrong:
            wrong[f.path] = known_wrong[f.path]
            continue
        out, truth = outputs[i], bodies[i]
        ended = out[-1:] == [stop] and out[:int(ends[i])] == truth[:int(ends[i])]
        data = generated_bytes(decode_ids(tokenizer, out[int(ends[i]):-1] if ended else out), f.encoding)
        if not (ended and hashlib.sha256(data).hexdigest() == (f.sha256 or hashlib.sha256(f.data).hexdigest())):
            differs = next((j for j, (a, b) in enumerate(zip(out, truth)) if a != b), min(len(out), len(truth)))
            wrong[f.path] = len(prompts[i]) + differs
    return RegenerationReport(len(files), len(files) - len(wrong), sum(len(b) for b in bodies), wrong,
                              len(files) - len(todo))
