"""Check that greedy generation from each file's path prompt brings back the whole file, token for token.

Full sequential regeneration of a corpus is slow (one token at a time, file after file). It is split
here into independent pieces that batch well, without changing what is checked: under the sliding
policy of laam.windows, generation of the targets of window (start, end, first) reads exactly
tokens [start, p) for each target p, i.e. it prefills tokens [start, first) and decodes end - first
tokens with the KV cache — the same operations `generate` performs after each slide. If every
window's greedy continuation from the true prefix equals the true tokens, then by induction over
windows the sequential regeneration of the file from its path prompt (the first window's prefix up
to <|end_header|>) is exact, and so are its bytes, since the tokenizer round-trips exactly.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch

from laam.data import WindowSet


@dataclass
class RegenerationReport:
    files: int
    exact: int
    tokens: int  # body tokens regenerated
    wrong: dict[str, int] = field(default_factory=dict)  # path -> first wrong position in its record

    @property
    def all_exact(self) -> bool:
        return self.exact == self.files


@torch.no_grad()
def verify_regeneration(model, window_set: WindowSet, batch_size: int = 64, progress=None) -> RegenerationReport:
    """Greedy-regenerate every body token of every file under the windows' context policy (see module doc)."""
    from transformers import GenerationConfig

    model.eval()
    device = next(model.parameters()).device
    cache = window_set.cache
    groups: dict[int, list[tuple[int, int, int, int]]] = defaultdict(list)  # prefix length -> pieces
    for record, start, end, first in window_set.rows.tolist():
        prefix_end = max(first, int(cache.body_starts[record]))  # the header comes from the prompt
        if prefix_end < end:
            groups[prefix_end - start].append((record, start, prefix_end, end))
    first_wrong: dict[int, int] = {}
    total = sum(len(g) for g in groups.values())
    done = 0
    for length, pieces in sorted(groups.items()):
        for i in range(0, len(pieces), batch_size):
            chunk = pieces[i:i + batch_size]
            prefix = torch.tensor(np.stack([cache.record(r)[s:p].astype(np.int64) for r, s, p, _ in chunk]),
                                  device=device)
            new = max(e - p for _, _, p, e in chunk)
            config = GenerationConfig(do_sample=False, max_new_tokens=new, eos_token_id=None,
                                      pad_token_id=model.config.pad_token_id)
            out = model.generate(input_ids=prefix, attention_mask=torch.ones_like(prefix),
                                 generation_config=config)[:, length:].cpu().numpy()
            for row, (record, _, p, e) in zip(out, chunk):
                truth = cache.record(record)[p:e]
                got = np.full(len(truth), -1, dtype=np.int64)
                got[:min(len(row), len(truth))] = row[:len(truth)]
                mismatch = np.flatnonzero(got != truth)
                if len(mismatch):
                    position = p + int(mismatch[0])
                    first_wrong[record] = min(first_wrong.get(record, position), position)
            done += len(chunk)
            if progress:
                progress(done, total)
    files = len(cache.paths)
    body_tokens = int((cache.lengths - cache.body_starts).sum())
    return RegenerationReport(files, files - len(first_wrong), body_tokens,
                              {cache.paths[r]: pos for r, pos in sorted(first_wrong.items())})


@torch.no_grad()
def regenerate(model, prompt: list[int], context: int, stride: int, max_new_tokens: int) -> list[int]:
    """Plain sequential greedy generation under laam.windows' sliding policy (one token at a time, KV cache,
    re-prefill after each slide): the reference that verify_regeneration decomposes into batched pieces."""
    import inspect

    from laam.windows import context_start

    device = next(model.parameters()).device
    cache_arg = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    ids, past, window_start = list(prompt), None, -1
    for _ in range(max_new_tokens):
        p = len(ids)
        start = context_start(p, context, stride)
        if start != window_start:
            window_start = start
            out = model(input_ids=torch.tensor([ids[start:p]], device=device), use_cache=True)
        else:
            out = model(input_ids=torch.tensor([[ids[-1]]], device=device), use_cache=True, **{cache_arg: past})
        past = getattr(out, cache_arg)
        token = int(out.logits[0, -1].argmax())
        ids.append(token)
        if token == model.config.eos_token_id:
            break
    return ids
