"""A plain sequential greedy decoder under the WindowPolicy: one sequence, one token a step, the KV cache
re-read at each slide. The reference the engine (batched, drafted), the training check and the stock
decoders are held to, as llama2.c's test_all.py holds its C runner to the PyTorch model."""

from __future__ import annotations

import inspect

import torch

from laam.windows import WindowPolicy


@torch.no_grad()
def greedy_reference(model, prompt: list[int], policy: WindowPolicy, max_new_tokens: int,
                     stop_id: int | None = None) -> list[int]:
    """prompt + the generated tokens (ending with stop_id when the model emits it)."""
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    ids, past, window_start = list(prompt), None, -1
    for _ in range(max_new_tokens):
        p = len(ids)
        start = policy.context_start(p)
        if start != window_start:
            window_start = start
            out = model(input_ids=torch.tensor([ids[start:p]]), use_cache=True)
        else:
            out = model(input_ids=torch.tensor([[ids[-1]]]), use_cache=True, **{cache_arg: past})
        past = getattr(out, cache_arg)
        token = int(out.logits[0, -1].argmax())
        ids.append(token)
        if token == stop_id:
            break
    return ids
