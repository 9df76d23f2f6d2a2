"""Batched generation with a KV cache under the WindowPolicy: generate, extract, audit and verify all use it.

Many sequences (files, extraction prefixes) are generated at once. Each row of the batch keeps its
own window: the KV cache holds the tokens [start, len - 1) of its sequence, left-padded to the
longest row and masked. A row whose next prediction needs a window the cache does not hold (the
policy slid) re-reads its window from position 0 (the way training saw it); rows that finish are
replaced by waiting requests (continuous batching), so long and short files share a batch. Rows with a
draft are checked a window per forward pass instead (engine.drafts).

HF `generate` does neither per-row sliding windows nor row replacement, hence this small engine;
it relies on the stock `LlamaForCausalLM` forward with a 2-D attention mask, explicit position ids
and a `DynamicCache`, whose per-layer key/value tensors it rearranges between steps (engine.kv).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from laam.engine.drafts import resync, verify_drafts
from laam.engine.kv import KVRows, cache_kwarg, keep_kwarg, left_padded, new_cache
from laam.engine.request import GenerationStats, Request, Row
from laam.engine.sampling import Sampling
from laam.errors import LaamError
from laam.windows import WindowPolicy


class _Batch:
    """The state of one `run`: which requests wait, which rows decode (with their KV cache), which follow drafts."""

    def __init__(self, requests: Sequence[Request], stats: GenerationStats, on_token, on_done):
        self.requests, self.stats, self.on_token, self.on_done = requests, stats, on_token, on_done
        self.results: list[list[int] | None] = [None] * len(requests)
        self.waiting = list(range(len(requests)))[::-1]  # pop() takes them in the given order
        self.rows: list[Row] = []  # decoded a token at a time, with a KV cache (self.kv, same order)
        self.drafting: list[Row] = []  # still equal to their draft
        self.unread: list[Row] = []  # rows that left draft mode: their window is read next
        self.kv = KVRows()

    def busy(self) -> bool:
        return bool(self.rows or self.drafting or self.unread or self.waiting)

    def emit(self, row: Row, tokens: list[int]) -> bool:
        """Append tokens to a row; True when its request is complete."""
        request = self.requests[row.index]
        for token in tokens:
            row.tokens.append(token)
            row.generated += 1
            self.stats.tokens += 1
            if self.on_token:
                self.on_token(row.index, token)
            if token == request.stop_id or row.generated >= request.max_new_tokens:
                return self._finish(row)
        if request.until_divergence and row.diverged:  # its last token is the first that differs from the draft
            return self._finish(row)
        return False

    def _finish(self, row: Row) -> bool:
        self.results[row.index] = row.tokens[len(self.requests[row.index].prompt):]
        if self.on_done:
            self.on_done(row.index, self.results[row.index])
        return True


class WindowedGenerator:
    """Generates many requests at once with one model; see the module docstring."""

    def __init__(self, model, policy: WindowPolicy, batch_size: int = 64):
        self.model, self.policy, self.batch_size = model, policy, max(1, batch_size)
        self.cache_kwarg, self.keep_kwarg = cache_kwarg(model), keep_kwarg(model)
        self.stats = GenerationStats()

    def run(self, requests: Sequence[Request], sampling: Sampling | None = None,
            on_token: Callable[[int, int], None] | None = None,
            on_done: Callable[[int, list[int]], None] | None = None) -> list[list[int]]:
        """New tokens for every request, in request order. `on_token(i, token)` sees each token as it comes,
        `on_done(i, new_tokens)` each request as it ends (for progress bars and streaming)."""
        sampling = sampling or Sampling()
        began = time.perf_counter()
        batch = _Batch(requests, self.stats, on_token, on_done)
        with torch.inference_mode():
            while batch.busy():
                fresh = self._admit(batch, sampling)
                self._advance_drafts(batch)
                if not batch.rows and not fresh:
                    continue
                logits = self._next_logits(batch, fresh)
                self._choose(batch, logits, sampling)
        self.stats.seconds += time.perf_counter() - began
        return batch.results  # type: ignore[return-value]

    # --- the four steps of a round ----------------------------------------------------------------
    def _admit(self, batch: _Batch, sampling: Sampling) -> list[Row]:
        """Fill free slots with waiting requests; returns the rows whose window must be read (new or unread)."""
        fresh, batch.unread = batch.unread, []
        while batch.waiting and len(batch.rows) + len(batch.drafting) + len(fresh) < self.batch_size:
            i = batch.waiting.pop()
            request = batch.requests[i]
            if not request.prompt:
                raise LaamError("cannot generate from an empty prompt")
            if request.max_new_tokens <= 0:
                batch.results[i] = []
                continue
            row = Row(i, list(request.prompt), rng=sampling.generator(i),
                      drafting=bool(sampling.greedy and request.draft))
            (batch.drafting if row.drafting else fresh).append(row)
        return fresh

    def _advance_drafts(self, batch: _Batch) -> None:
        """Rows following their draft: verified a window at a time; those that leave it are read next round."""
        if not batch.drafting:
            return
        produced = verify_drafts(self.model, self.policy, batch.drafting, batch.requests, self.stats)
        still = []
        for row in batch.drafting:
            if batch.emit(row, produced[id(row)]):
                continue
            (still if row.drafting else batch.unread).append(row)
        batch.drafting = still

    def _next_logits(self, batch: _Batch, fresh: list[Row]) -> dict[int, torch.Tensor]:
        """Last logits of every decoding row: one cached step for rows whose window holds, a window read for
        rows that are new or whose window slid. Leaves batch.rows/batch.kv in the order of the cache."""
        keep, kept_at, refill = [], [], list(fresh)
        for position, row in enumerate(batch.rows):
            start = self.policy.context_start(len(row.tokens))
            if start != row.start:
                row.start = start
                refill.append(row)
            else:
                keep.append(row)
                kept_at.append(position)
        for row in fresh:
            row.start = self.policy.context_start(len(row.tokens))
        logits: dict[int, torch.Tensor] = {}
        kv = KVRows()
        if keep:
            kv = batch.kv if len(keep) == len(batch.rows) else batch.kv.select(kept_at)
            step_mask = torch.cat([kv.mask, torch.ones((len(keep), 1), dtype=torch.long)], dim=1)
            ids = torch.tensor([[r.tokens[-1]] for r in keep])
            positions = torch.tensor([[len(r.tokens) - 1 - r.start] for r in keep])
            cache = new_cache(kv.layers)
            for row, lg in zip(keep, self._forward(ids, step_mask, positions, cache)):
                logits[id(row)] = lg
            kv = KVRows.from_cache(cache, step_mask)
        groups: dict[int, list[Row]] = {}  # slides all read context + 1 - stride tokens: group by length, no padding
        for row in refill:
            groups.setdefault(len(row.tokens) - row.start, []).append(row)
        for group in groups.values():
            ids, mask, positions = left_padded([r.tokens[r.start:] for r in group])
            cache = new_cache()
            for row, lg in zip(group, self._forward(ids, mask, positions, cache)):
                logits[id(row)] = lg
            self.stats.refills += len(group)
            kv = kv.stack(KVRows.from_cache(cache, mask))
            keep += group
        batch.rows, batch.kv = keep, kv
        return logits

    def _choose(self, batch: _Batch, logits: dict[int, torch.Tensor], sampling: Sampling) -> None:
        """Choose each row's next token, append it, retire finished rows and rows that found their draft again."""
        rows = batch.rows
        chosen = sampling.choose(torch.stack([logits[id(r)] for r in rows]), [r.rng for r in rows])
        survivors = []
        for position, (row, token) in enumerate(zip(rows, chosen)):
            if batch.emit(row, [token]):
                continue
            draft = batch.requests[row.index].draft
            if draft and sampling.greedy and resync(row, draft):
                batch.drafting.append(row)  # leaves the cache; verified from its window next round
            else:
                survivors.append(position)
        if len(survivors) != len(rows):
            batch.rows = [rows[p] for p in survivors]
            batch.kv = batch.kv.select(survivors)
        batch.kv = batch.kv.trim()

    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache) -> torch.Tensor:
        device = self.model.device
        out = self.model(input_ids=ids.to(device), attention_mask=mask.to(device),
                         position_ids=positions.to(device), use_cache=True,
                         **{self.cache_kwarg: cache, self.keep_kwarg: 1})
        self.stats.forward_tokens += int(ids.shape[0] * ids.shape[1])
        return out.logits[:, -1, :]
