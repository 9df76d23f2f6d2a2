"""Rows stepped position by position in lockstep (the compressor's engine: encoder and decoder alike).

Unlike WindowedGenerator, every row sits at the same position, so no padding masks, no row
replacement and no drafts: the encoder and the decoder run exactly the same shapes, which keeps
their probabilities bit-identical.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from laam.engine.kv import cache_kwarg, keep_kwarg, new_cache
from laam.windows import WindowPolicy


def step_in_lockstep(model, tokens: torch.Tensor, header_tokens: Sequence[int], lengths: Sequence[int],
                     policy: WindowPolicy, choose: Callable, advance: Callable[[int], None] = lambda n: None) -> None:
    """Walk a batch of records through the model in lockstep, position by position.

    `tokens` is a [rows, longest] int64 tensor on the CPU holding every token known so far (headers always;
    the entropy encoder knows all, the decoder fills them in) and padding past each record's end. At
    position p the model reads tokens [context_start(p), p) of every row: the KV cache grows one token a
    step and is rebuilt by a prefill when the window slides. For the rows whose token p is coded
    (header <= p < length), `choose(p, rows, probs)` gets their float32 probabilities as numpy arrays and
    returns their tokens at p.
    """
    device = next(model.parameters()).device
    kwargs = {keep_kwarg(model): 1}  # only the last position's logits: [rows, vocab], not [rows, window, vocab]
    cache_name = cache_kwarg(model)
    cache, window_start = None, -1
    lengths_np, headers_np = np.asarray(lengths), np.asarray(header_tokens)
    for p in range(int(headers_np.min()), tokens.shape[1]):
        start = policy.context_start(p)
        if start != window_start:  # first step or a slide: re-read the window
            cache, window_start = new_cache(), start
            inputs = tokens[:, start:p]
        else:
            inputs = tokens[:, p - 1:p]
        logits = model(input_ids=inputs.to(device), use_cache=True, **{cache_name: cache}, **kwargs).logits[:, -1]
        rows = np.flatnonzero((headers_np <= p) & (p < lengths_np))
        if len(rows) == 0:
            continue
        probs = torch.softmax(logits[torch.from_numpy(rows).to(device)].float(), dim=-1).cpu().numpy()
        tokens[rows, p] = torch.from_numpy(np.asarray(choose(p, rows, probs)).astype(np.int64))
        advance(len(rows))
