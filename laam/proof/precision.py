"""Can the weights travel in bfloat16? Measured, not assumed: the token greedy decoding picks at every body
position of every training file, with the weights rounded to bfloat16, against float32.

Two readers of a bfloat16 folder compute differently, so both are measured:
- `bf16 weights, fp32 arithmetic`: laam's loader (model.folder.load_model upcasts to float32) and the GGUF f32
  export compute with the rounded weights in float32;
- `bf16 weights and arithmetic`: stock transformers' `from_pretrained` loads config.json's dtype (its default
  `dtype="auto"`), so `pipeline("text-generation", FOLDER)` runs in bfloat16.
Each is one teacher-forced pass over every window (train.memorization.iter_margins: the context greedy generation
gives each token, laam.windows), compared position by position with the float32 pass. A position flips when the
true token is no longer strictly ahead (margin <= 0: a tie counts, since greedy's tie-break is not the check's).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from laam.data.records import END_HEADER, PAD
from laam.data.tokenizer import encode_records, special_ids
from laam.engine.forcing import iter_margins
from laam.proof.margin import in_memory_windows

FP32 = "fp32"
BF16_WEIGHTS = "bf16 weights, fp32 arithmetic"
BF16 = "bf16 weights and arithmetic"
READERS = {BF16_WEIGHTS: "laam's loader (model.folder.load_model, float32) and the GGUF f32 export",
           BF16: "stock transformers (from_pretrained's dtype='auto' loads config.json's dtype)"}
LISTED = 10  # flipped positions listed per variant
METHOD = ("one teacher-forced pass over every window (laam.windows: the context greedy generation gives each token) "
          "in float32, and one per bfloat16 variant; a position a bare path must bring back (the body, <|end_file|> "
          "included, and the path's <|end_header|> where the memorization checks score it) flips when float32 has "
          "the true token strictly ahead and the variant does not (margin = true logit - best other <= 0: a tie "
          "counts)")


@dataclass
class Pass:
    """One teacher-forced pass: per scored target, in iter_margins' order."""

    records: np.ndarray
    positions: np.ndarray
    body: np.ndarray  # bool: a token a bare path prompt must bring back (the body, and the path's <|end_header|>
    # where the checks score it: train.batches.WindowSet.header_ends)
    margin: np.ndarray  # float32: true logit - best other (<= 0: greedy may pick another token)


@dataclass
class PrecisionCheck:
    files: int
    positions: int  # positions compared: the body (<|end_file|> included) and each scored <|end_header|>
    fp32_wrong: dict[str, int]  # path -> body positions not strictly right in float32 (the model is not exact)
    fp32_min_margin: float | None
    variants: dict[str, dict] = field(default_factory=dict)  # name -> flips, min margin, first flipped positions
    seconds: float = 0.0

    @property
    def bf16_safe(self) -> bool:
        """Every variant measured and no position flipped in any."""
        return set(self.variants) == {BF16_WEIGHTS, BF16} and all(v["flips"] == 0 for v in self.variants.values())

    def to_dict(self) -> dict:
        return {"files": self.files, "positions_compared": self.positions, "fp32_wrong": self.fp32_wrong,
                "fp32_min_margin": self.fp32_min_margin, "variants": self.variants, "seconds": round(self.seconds, 1),
                "method": METHOD}


def teacher_forced(model, window_set, pad_id: int, batch_size: int, on_batch: Callable | None = None) -> Pass:
    """Every scored target's margin under `model` (its own dtype), in a fixed order every pass shares."""
    parts = []
    for forced in iter_margins(model, window_set, pad_id, batch_size):
        body = (forced.body | forced.header_end).numpy()  # what a bare path must bring back, as the checks count
        parts.append((forced.records, forced.positions, body, forced.margins.margin.numpy()))
        if on_batch:
            on_batch()
    if not parts:
        return Pass(*(np.zeros(0, dtype=t) for t in (np.int64, np.int64, bool, np.float32)))
    return Pass(*(np.concatenate(column) for column in zip(*parts)))


def rounded_to_bf16(model):
    """A float32 copy of `model` whose weights are rounded to bfloat16 (what loading bf16 weights as float32 gives)."""
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for tensor in list(twin.parameters()) + list(twin.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(torch.bfloat16).to(tensor.dtype))
    return twin


def flips(reference: Pass, other: Pass, paths: list[str]) -> dict:
    """Body positions right in `reference` and not strictly right in `other`: how many, where (the first LISTED),
    the smallest body margin of `other`."""
    if not (np.array_equal(reference.records, other.records) and np.array_equal(reference.positions, other.positions)):
        raise RuntimeError("two teacher-forced passes scored different positions")  # a bug, not a user's fault
    body = reference.body
    flipped = np.flatnonzero(body & (reference.margin > 0) & (other.margin <= 0))
    return {"flips": int(len(flipped)),
            "files_with_flips": len({int(r) for r in reference.records[flipped]}),
            "min_margin": round(float(other.margin[body].min()), 4) if body.any() else None,
            "first_flips": [{"path": paths[int(reference.records[i])], "position": int(reference.positions[i]),
                             "margin_fp32": round(float(reference.margin[i]), 4),
                             "margin": round(float(other.margin[i]), 4)} for i in flipped[:LISTED]]}


def check_precision(model, tokenizer, files, policy, batch_size: int = 64, bf16: bool = True,
                    progress: Callable | None = None) -> PrecisionCheck:
    """The float32 pass over every window of `files` (data.corpus.CorpusFile), then, with `bf16`, both bfloat16
    variants (module docstring) compared with it. `model` is float32 (model.folder.load_model) and is not changed."""
    began = time.perf_counter()
    special = special_ids(tokenizer)
    ids = encode_records(tokenizer, [f.record for f in files])
    paths = [f.path for f in files]
    window_set = in_memory_windows(ids, [r.index(special[END_HEADER]) + 1 for r in ids], policy, paths)
    batches = -(-len(window_set) // batch_size)

    def run(name: str, variant) -> Pass:
        tick = progress(f"teacher forcing, {name}", batches) if progress else None
        return teacher_forced(variant, window_set, special[PAD], batch_size, tick)

    reference = run(FP32, model)
    body = reference.body
    wrong = body & (reference.margin <= 0)
    fp32_wrong: dict[str, int] = {}
    for record in reference.records[wrong]:
        fp32_wrong[paths[int(record)]] = fp32_wrong.get(paths[int(record)], 0) + 1
    check = PrecisionCheck(len(files), int(body.sum()), fp32_wrong,
                           round(float(reference.margin[body].min()), 4) if body.any() else None)
    if bf16 and not fp32_wrong:
        check.variants[BF16_WEIGHTS] = {**flips(reference, run(BF16_WEIGHTS, rounded_to_bf16(model)), paths),
                                        "readers": READERS[BF16_WEIGHTS]}
        check.variants[BF16] = {**flips(reference, run(BF16, copy.deepcopy(model).to(torch.bfloat16)), paths),
                                "readers": READERS[BF16]}
    check.seconds = time.perf_counter() - began
    return check
