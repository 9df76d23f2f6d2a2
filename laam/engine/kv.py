"""The KV cache of a batch whose rows sit at different positions: left-padded, masked, rearranged between steps.

transformers' `DynamicCache` holds per-layer key/value tensors [rows, heads, T, dim]; the engine takes
them out after each forward pass (`KVRows`), drops finished rows, stacks newly read windows onto them,
and trims columns no row attends to any more, then hands them back in a new cache for the next step.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch


def cache_kwarg(model) -> str:
    """transformers >= 5.x names the cache argument `cache`; earlier releases `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def keep_kwarg(model) -> str:
    """`logits_to_keep`, named `num_logits_to_keep` before transformers 4.50."""
    return "logits_to_keep" if "logits_to_keep" in inspect.signature(model.forward).parameters else \
        "num_logits_to_keep"


def new_cache(layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None):
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=layers) if layers else DynamicCache()


def left_padded(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(ids, mask, positions) of sequences right-aligned in one [rows, longest] block; each row's positions
    count from 0 at its first real token, as if it were alone."""
    width = max(len(s) for s in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        ids[i, width - len(s):] = torch.tensor(list(s), dtype=torch.long)
        mask[i, width - len(s):] = 1
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0)


@dataclass
class KVRows:
    """Per-layer (keys, values) [rows, heads, T, dim] and the [rows, T] attention mask of the cached rows."""

    layers: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    mask: torch.Tensor = field(default_factory=lambda: torch.zeros((0, 0), dtype=torch.long))

    @classmethod
    def from_cache(cls, cache, mask: torch.Tensor) -> KVRows:
        return cls([(layer.keys, layer.values) for layer in cache.layers], mask)

    def select(self, rows: Sequence[int]) -> KVRows:
        index = torch.tensor(list(rows), dtype=torch.long)
        return KVRows([(k[index], v[index]) for k, v in self.layers], self.mask[index])

    def stack(self, other: KVRows) -> KVRows:
        """Rows of both, right-aligned to the longer one."""
        if not self.layers:
            return other
        width = max(self.mask.shape[1], other.mask.shape[1])
        a, b = width - self.mask.shape[1], width - other.mask.shape[1]
        layers = [(torch.cat([_left_pad(k, a), _left_pad(nk, b)]), torch.cat([_left_pad(v, a), _left_pad(nv, b)]))
                  for (k, v), (nk, nv) in zip(self.layers, other.layers)]
        return KVRows(layers, torch.cat([_left_pad(self.mask, a), _left_pad(other.mask, b)]))

    def trim(self) -> KVRows:
        """Drop leading cache columns that no row attends to (rows' windows shrink when they slide)."""
        if self.mask.numel() == 0:
            return self
        drop = self.mask.shape[1] - int(self.mask.sum(-1).max())
        if drop <= 0:
            return self
        return KVRows([(k[:, :, drop:], v[:, :, drop:]) for k, v in self.layers], self.mask[:, drop:])


def _left_pad(t: torch.Tensor, n: int) -> torch.Tensor:
    if n == 0:
        return t
    shape = list(t.shape)
    shape[-2 if t.dim() == 4 else -1] = n
    return torch.cat([t.new_zeros(shape), t], dim=-2 if t.dim() == 4 else -1)
