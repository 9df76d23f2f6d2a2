"""The KV cache of a batch whose rows sit at different positions: left-padded, masked, rearranged between steps.

transformers' `DynamicCache` holds per-layer key/value tensors [rows, heads, T, dim]; the engine takes
them out after each forward pass (`KVRows`), drops finished rows, stacks newly read windows onto them,
and trims columns no row attends to any more, then hands them back in a new cache for the next step.

Appending a step's keys and values is the one per-step cost that grows with the cache: `DynamicLayer` concatenates,
copying the whole cache every step (and `DynamicCache(ddp_cache_data=...)` copies it once more on the way in). The
caches made here (`new_cache`) hold their tensors as views of buffers with spare columns (`ROOM`) and write a step
into them in place, so a cache is copied once per ROOM steps; on the foreign audit (64 rows of 100 + 64 tokens) those
copies were about as costly as the model's matrix products.
"""

from __future__ import annotations

import functools
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


ROOM = 64  # spare cache columns allocated whenever a buffer is outgrown (a carlini-100 continuation's length)


def new_cache(layers: list[tuple[torch.Tensor, torch.Tensor]] | None = None):
    """A `DynamicCache` holding `layers` without copying them, whose layers append in place (see the docstring)."""
    from transformers import DynamicCache

    cache = DynamicCache()
    cache.layer_class_to_replicate = _roomy_layer_class()
    if layers:
        cache.layers = [cache.layer_class_to_replicate.holding(k, v) for k, v in layers]
    return cache


def _room(t: torch.Tensor) -> int:
    """Columns free after `t` [rows, heads, T, dim] in its storage, when `t` is a column slice of a contiguous
    [rows, heads, capacity, dim] buffer (what `_RoomyLayer` makes and `KVRows.trim` keeps); else 0."""
    rows, heads, width, dim = t.shape
    if t.stride(3) != 1 or t.stride(2) != dim or t.stride(1) % dim or t.stride(0) != heads * t.stride(1):
        return 0
    capacity = t.stride(1) // dim
    first = t.storage_offset() // dim
    if first >= capacity or (t.storage_offset() - first * dim + rows * t.stride(0)) * t.element_size() > \
            t.untyped_storage().nbytes():
        return 0  # not a slice of the first rows of such a buffer
    return capacity - first - width


def _appended(t: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    """`t` followed by `new` along the columns: written into t's spare columns when it has enough, else copied into a
    fresh buffer with ROOM spare columns. Only the caller's view of the buffer may be used afterwards."""
    width, extra = t.shape[2], new.shape[2]
    if _room(t) >= extra and t.dtype == new.dtype and t.device == new.device:
        grown = t.as_strided((*t.shape[:2], width + extra, t.shape[3]), t.stride(), t.storage_offset())
    else:
        buffer = t.new_empty((t.shape[0], t.shape[1], width + extra + ROOM, t.shape[3]))
        grown = buffer[:, :, :width + extra]
        grown[:, :, :width] = t
    grown[:, :, width:] = new
    return grown


@functools.cache
def _roomy_layer_class():
    """transformers' `DynamicLayer` with `update` appending through `_appended` (made on first use, so importing
    this module does not import transformers)."""
    from transformers.cache_utils import DynamicLayer

    class _RoomyLayer(DynamicLayer):
        @classmethod
        def holding(cls, keys: torch.Tensor, values: torch.Tensor):
            layer = cls()
            layer.lazy_initialization(keys, values)
            layer.keys, layer.values = keys, values
            return layer

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized or self.keys.numel() == 0:
                self.lazy_initialization(key_states, value_states)
                self.keys = key_states.new_empty((*key_states.shape[:2], 0, key_states.shape[3]))
                self.values = value_states.new_empty((*value_states.shape[:2], 0, value_states.shape[3]))
            self.keys = _appended(self.keys, key_states)
            self.values = _appended(self.values, value_states)
            return self.keys, self.values

    return _RoomyLayer


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
