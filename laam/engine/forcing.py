"""Teacher forcing under the WindowPolicy: the model's logits for a known sequence, each position predicted
from exactly the context greedy generation gives it, so argmax agreement here is what regeneration
reproduces.

`token_margins` turns logits into each target's margin: the true token's logit minus the best other
token's. Positive: greedy decoding picks the true token, with that much room; negative: it picks another
token (`rival`). `forced_margins` runs it on a batch of windows (hidden states once, the LM head only where a
target is scored): the memorization check (train.memorization) and the audit's margin certificate
(proof.margin) both call it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch

from laam.windows import WindowPolicy

LOGITS_PER_CHUNK = 1 << 24  # 64 MB of float32 logits per LM-head call in forced_margins


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
                   autocast: Callable | None = None) -> Margins:
    """Teacher-forced margins of a batch of windows [B, T]: `targets[b, t]` is the token after input t of row b,
    scored where `scored` is true; results are in the row-major order of `scored`'s true entries.

    The transformer runs once (under `autocast` when given); the LM head runs in its weights' dtype on the scored
    positions only, so padding costs no vocabulary-sized logits, and on at most LOGITS_PER_CHUNK logits at a time,
    so a large vocabulary does not hold [B * T, vocab] logits at once."""
    with torch.inference_mode():
        with autocast() if autocast else contextlib.nullcontext():
            hidden = model.model(input_ids=input_ids).last_hidden_state
        hidden, targets = hidden[scored].to(model.lm_head.weight.dtype), targets[scored]
        rows = max(1, LOGITS_PER_CHUNK // model.lm_head.weight.shape[0])
        parts = [token_margins(model.lm_head(hidden[i:i + rows]), targets[i:i + rows])
                 for i in range(0, len(hidden), rows)] or [token_margins(model.lm_head(hidden), targets)]
        return Margins(*(torch.cat([getattr(m, f) for m in parts]) for f in ("target", "predicted", "rival", "margin")))
