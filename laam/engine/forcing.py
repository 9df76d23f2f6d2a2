"""Teacher forcing under the WindowPolicy: the model's logits for a known sequence, each position predicted
from exactly the context greedy generation gives it, so argmax agreement here is what regeneration
reproduces."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from laam.windows import WindowPolicy


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
