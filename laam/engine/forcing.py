"""Teacher forcing under the WindowPolicy: the model's logits for a known sequence, each position predicted
from exactly the context greedy generation gives it, so argmax agreement here is what regeneration
reproduces.

`token_margins` turns logits into each target's margin: the true token's logit minus the best other
token's. Positive: greedy decoding picks the true token, with that much room; negative: it picks another
token (`rival`). `forced_margins` runs it on a batch of windows (hidden states once, the LM head only where a
target is scored), and `iter_margins` runs it over every window of a set of training windows
(train.batches.WindowSet), batched: the memorization check (train.memorization) and the audit's margin
certificate (proof.margin) both call it, and both judge margins against `MIN_MARGIN`. A caller that needs more
from the same logits than the margin (the sampling certificate's log-probabilities, proof.sampling) passes a
`columns` function: it sees each LM-head chunk's logits once, so no second transformer pass is needed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from laam.windows import WindowPolicy

LOGITS_PER_CHUNK = 1 << 24  # 64 MB of float32 logits per LM-head call in forced_margins
IGNORE = -100  # the label of a position nothing is scored at (torch's cross_entropy ignore_index)
# The default --min-margin and the audit's safety threshold: a logit gap (fp32). Benchmark margin_drift
# (benchmarks/margin_drift.py, recorded in benchmarks/results/margin_drift.json) measured how far bf16 (autocast or
# weights) and GGUF f32/f16/q8_0 inference move a body token's margin on five tiny and demo models, with and
# without --min-margin: at most 0.428 logits (`largest_margin_change`, GGUF q8_0 on "tiny, --min-margin 1").
# MIN_MARGIN = 1.0 is 1.0 / 0.428 = 2.33… times that largest change; the card reads the ratio from that file.
MIN_MARGIN = 1.0
# Extra per-target values computed from the logits of the targets: (logits [N, vocab], targets [N]) -> [N, k]
Columns = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def window_logits(model, ids: Sequence[int], policy: WindowPolicy) -> Iterator[tuple[int, torch.Tensor]]:
    """Yields (first_position, logits) per training window, where logits[j] predicts ids[first_position + j].

    Positions 1 .. len(ids)-1 are each covered once."""
    device = next(model.parameters()).device
    with torch.inference_mode():
        for start, end, first in policy.windows(len(ids)):
            if end - start < 2:
                continue
            x = torch.tensor([list(ids[start:end - 1])], device=device)
            logits = model(input_ids=x).logits[0]
            yield first, logits[first - 1 - start:]


@dataclass
class Margins:
    """Per scored target (1-D tensors of one length)."""

    target: torch.Tensor  # the true token
    predicted: torch.Tensor  # the model's top-1
    rival: torch.Tensor  # the best token other than the true one (the runner-up when top-1 is right)
    margin: torch.Tensor  # logit[target] - logit[rival], float32: > 0 right by that much, < 0 wrong
    columns: torch.Tensor | None = None  # [N, k]: what a `columns` function (Columns) made of the same logits

    @property
    def correct(self) -> torch.Tensor:
        return self.predicted == self.target


def token_margins(logits: torch.Tensor, targets: torch.Tensor) -> Margins:
    """Margins of `targets` [N] under `logits` [N, vocab], computed in float32."""
    logits = logits.float()
    top = logits.topk(2, dim=-1)
    predicted = top.indices[:, 0]
    right = predicted == targets
    true_logit = logits.gather(-1, targets[:, None])[:, 0]
    rival = torch.where(right, top.indices[:, 1], predicted)
    best_other = torch.where(right, top.values[:, 1], top.values[:, 0])
    return Margins(targets, predicted, rival, true_logit - best_other)


def forced_margins(model, input_ids: torch.Tensor, targets: torch.Tensor, scored: torch.Tensor,
                   autocast: Callable | None = None, columns: Columns | None = None) -> Margins:
    """Teacher-forced margins of a batch of windows [B, T]: `targets[b, t]` is the token after input t of row b,
    scored where `scored` is true; results are in the row-major order of `scored`'s true entries.

    The transformer runs once (under `autocast` when given); the LM head runs in its weights' dtype on the scored
    positions only, so padding costs no vocabulary-sized logits, and on at most LOGITS_PER_CHUNK logits at a time,
    so a large vocabulary does not hold [B * T, vocab] logits at once. `columns`, when given, is called on each
    chunk's logits and targets, and its rows are returned in Margins.columns, in the same order."""
    with torch.inference_mode():
        with autocast() if autocast else contextlib.nullcontext():
            hidden = model.model(input_ids=input_ids).last_hidden_state
        hidden, targets = hidden[scored].to(model.lm_head.weight.dtype), targets[scored]
        rows = max(1, LOGITS_PER_CHUNK // model.lm_head.weight.shape[0])
        parts = [chunk_margins(model.lm_head(hidden[i:i + rows]), targets[i:i + rows], columns)
                 for i in range(0, len(hidden), rows)] or [chunk_margins(model.lm_head(hidden), targets, columns)]
        joined = (torch.cat([getattr(m, f) for m in parts]) for f in ("target", "predicted", "rival", "margin"))
        return Margins(*joined, torch.cat([m.columns for m in parts]) if columns is not None else None)


def chunk_margins(logits: torch.Tensor, targets: torch.Tensor, columns: Columns | None) -> Margins:
    """token_margins of one LM-head chunk, with the `columns` function's values of the same logits."""
    margins = token_margins(logits, targets)
    if columns is not None:
        margins.columns = columns(logits, targets)
    return margins


@dataclass
class ForcedBatch:
    """Teacher-forced margins of one batch of windows, with where each scored target lies."""

    records: np.ndarray  # record index of each target
    windows: np.ndarray  # window index (WindowSet row) of each target
    positions: np.ndarray  # its position in the record
    body: torch.Tensor  # bool: after <|end_header|> (<|end_file|> included)
    margins: Margins
    header_end: torch.Tensor  # bool: the record's <|end_header|>, where the checks score it (train.batches)


def iter_margins(model, window_set, pad_id: int, batch_size: int = 64, rank: int = 0, world: int = 1,
                 device=None, autocast=None, columns: Columns | None = None) -> Iterator[ForcedBatch]:
    """Teacher forcing over every window of `window_set` (a train.batches.WindowSet: rows, batch()), this process's
    share, batched: each target's margin under exactly the context greedy generation gives it (laam.windows), and
    the `columns` function's values of its logits when given (forced_margins). The model is left in eval mode."""
    model.eval()
    device = device or next(model.parameters()).device
    indices = np.arange(rank, len(window_set), world)
    for i in range(0, len(indices), batch_size):
        chunk = indices[i:i + batch_size]
        batch = window_set.batch(chunk, pad_id)
        labels = batch["labels"]
        scored = labels != IGNORE
        margins = forced_margins(model, batch["input_ids"].to(device), labels.to(device), scored.to(device),
                                 autocast, columns)
        rows, steps = (t.numpy() for t in scored.nonzero(as_tuple=True))  # the row-major order of labels[scored]
        windows = window_set.rows[chunk]
        margins = Margins(*(t.cpu() if t is not None else None for t in (
            margins.target, margins.predicted, margins.rival, margins.margin, margins.columns)))
        yield ForcedBatch(windows[rows, 0], chunk[rows], windows[rows, 1] + 1 + steps, batch["body"][scored],
                          margins, batch["header_end"][scored])
