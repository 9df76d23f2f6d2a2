"""Batched generation with a KV cache under the sliding-window policy of laam.windows.

Many sequences (files, extraction prefixes) are generated at once. Each row of the batch keeps its
own window: the KV cache holds the tokens [start, len - 1) of its sequence, left-padded to the
longest row and masked. A row whose next prediction would need more than `context` tokens drops
`stride` tokens and re-reads its window from position 0 (the way training saw it); rows that
finish are replaced by waiting requests (continuous batching), so long and short files share a batch.

HF `generate` does neither per-row sliding windows nor row replacement, hence this small engine;
it relies on the stock `LlamaForCausalLM` forward with a 2-D attention mask, explicit position ids
and a `DynamicCache`, whose per-layer key/value tensors it rearranges between steps.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from laam import LaamError
from laam.windows import context_start, windows


@dataclass
class Sampling:
    """How the next token is chosen; greedy unless `greedy` is False."""

    greedy: bool = True
    temperature: float = 1.0
    top_k: int = 0  # 0: no top-k cut
    top_p: float = 1.0  # 1.0: no nucleus cut
    seed: int = 0

    def __post_init__(self):
        if not self.greedy:
            if self.temperature <= 0:
                raise LaamError(f"temperature must be > 0, got {self.temperature} (use --greedy for argmax)")
            if not 0 < self.top_p <= 1:
                raise LaamError(f"top-p must be in (0, 1], got {self.top_p}")
            if self.top_k < 0:
                raise LaamError(f"top-k must be >= 0, got {self.top_k}")


@dataclass
class Request:
    """One sequence to continue: the prompt's token ids and how many tokens at most to add."""

    prompt: list[int]
    max_new_tokens: int
    stop_id: int | None = None  # generation ends after emitting this token (it is kept in the output)
    # Greedy only: tokens the output is expected to be (the original file, when auditing). They are checked,
    # never trusted: see WindowedGenerator.run.
    draft: list[int] | None = None


@dataclass
class _Row:
    index: int  # into the request list
    tokens: list[int]  # prompt + generated so far
    start: int  # first token of the window in the cache
    generated: int = 0
    rng: torch.Generator | None = None
    drafting: bool = False  # following its draft: verified a window at a time
    draft_at: int = 0  # next draft token expected
    resync_after: int = 0  # decoded rows look for their place in the draft again from this many tokens on
    misses: int = 0  # verifications in a row that accepted little (backs re-synchronization off)
    ngrams: dict | None = None  # draft n-gram -> position, built when first needed


RESYNC_NGRAM = 8  # tokens of own output that must match the draft to resume verifying it


@dataclass
class GenerationStats:
    tokens: int = 0  # new tokens produced
    forward_tokens: int = 0  # tokens run through the model (prefills included)
    refills: int = 0  # window (re)reads: first prompt reads and slides
    drafted: int = 0  # tokens produced by draft verification (each one the model's own argmax)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


SMALL_HEADS = "laam_small_heads"


def small_head_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention for many tiny heads (the original 5M model has 32 heads of size 2).

    PyTorch's SDPA kernels on CPU spend ~1 ms a call on such shapes, most of a decoding step; two batched
    matmuls over query heads grouped by their key/value head do the same work several times faster.
    The mask is transformers' SDPA boolean mask (True: attend); masked scores get the dtype's minimum,
    not -inf, so fully padded rows stay finite.
    """
    batch, heads, q_len, dim = query.shape
    if q_len > 16:  # reading a window: SDPA's fused kernel avoids materializing [heads, q, kv] scores
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    kv_heads, kv_len = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    scaling = dim ** -0.5 if scaling is None else scaling
    q = (query * scaling).reshape(batch, kv_heads, groups * q_len, dim)  # head h reads kv head h // groups
    scores = torch.matmul(q, key.transpose(-1, -2)).view(batch, kv_heads, groups, q_len, kv_len)
    if attention_mask is None:  # transformers skips the mask when plain causal attention is enough
        attention_mask = torch.ones(q_len, kv_len, dtype=torch.bool).tril(kv_len - q_len)
    elif attention_mask.dim() == 4:
        attention_mask = attention_mask[:, :, None]  # [batch, 1, 1, q, kv] over the groups
    if attention_mask.dtype == torch.bool:
        scores.masked_fill_(~attention_mask, torch.finfo(scores.dtype).min)
    else:
        scores += attention_mask
    probs = scores.softmax(-1).view(batch, kv_heads, groups * q_len, kv_len)
    out = torch.matmul(probs, value).view(batch, heads, q_len, dim)
    return out.transpose(1, 2).contiguous(), None


def register_small_head_attention() -> str:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(SMALL_HEADS, small_head_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(SMALL_HEADS, sdpa_mask)
    return SMALL_HEADS


def attention_for(config) -> str:
    """Our small-head attention where heads are tiny (<= 8 dims), SDPA otherwise."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return register_small_head_attention() if head_dim <= 8 else "sdpa"


def load_model(folder: Path, threads: int | None = None, device: str = "cpu"):
    """A saved LaaM model for inference: float32, eval mode, on `device`, the fastest attention for its head size."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging

    logging.disable_progress_bar()  # no "Loading weights" bar in the middle of our own output
    if threads:
        torch.set_num_threads(threads)
    if not (Path(folder) / "config.json").is_file():
        raise LaamError(f"no model in {folder} (expected a save_pretrained folder with config.json)")
    from transformers import AutoConfig

    attention = attention_for(AutoConfig.from_pretrained(str(folder)))
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, attn_implementation=attention)
    return model.to(device).eval()


def cache_kwarg(model) -> str:
    """transformers >= 5.x names the cache argument `cache`; earlier releases `past_key_values`."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def keep_kwarg(model) -> str:
    """`logits_to_keep`, named `num_logits_to_keep` before transformers 4.50."""
    return "logits_to_keep" if "logits_to_keep" in inspect.signature(model.forward).parameters else \
        "num_logits_to_keep"


def _new_cache(layers: list[tuple[torch.Tensor, torch.Tensor]]):
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=layers) if layers else DynamicCache()


def _layer_tensors(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]


def _choose(logits: torch.Tensor, rows: list[_Row], sampling: Sampling) -> list[int]:
    """Next token of each row from its last logits [n, vocab]."""
    if sampling.greedy:
        return logits.max(-1).indices.tolist()  # = argmax (first maximum on ties), ~2x faster on CPU
    logits = logits.float() / sampling.temperature
    if sampling.top_k:
        kth = torch.topk(logits, min(sampling.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        drop = cumulative - sorted_logits.softmax(-1) >= sampling.top_p  # keep the smallest set reaching top_p
        logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
    probs = logits.softmax(-1)
    # One generator per request: a sampled file does not depend on which others share its batch.
    return [int(torch.multinomial(probs[i], 1, generator=row.rng)) for i, row in enumerate(rows)]


class WindowedGenerator:
    """Generates many requests at once with one model; see the module docstring."""

    def __init__(self, model, context: int, stride: int, batch_size: int = 64):
        if not 0 < stride <= context:
            raise LaamError(f"stride must be in 1..context, got {stride} for context {context}")
        self.model, self.context, self.stride, self.batch_size = model, context, stride, max(1, batch_size)
        self.cache_kwarg, self.keep_kwarg = cache_kwarg(model), keep_kwarg(model)
        self.stats = GenerationStats()

    # --- model calls ----------------------------------------------------------------------------
    def _forward(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache):
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                         **{self.cache_kwarg: cache, self.keep_kwarg: 1})
        self.stats.forward_tokens += int(ids.shape[0] * ids.shape[1])
        return out.logits[:, -1, :]

    def _read_windows(self, rows: list[_Row]):
        """Prefill each row's window [start, len) from position 0: (last logits, per-layer K/V, mask)."""
        lengths = [len(r.tokens) - r.start for r in rows]
        width = max(lengths)
        pad = 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, (row, n) in enumerate(zip(rows, lengths)):
            ids[i, width - n:] = torch.tensor(row.tokens[row.start:])
            mask[i, width - n:] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = _new_cache([])
        logits = self._forward(ids, mask, positions, cache)
        self.stats.refills += len(rows)
        return logits, _layer_tensors(cache), mask

    # --- the loop -------------------------------------------------------------------------------
    def _verify_drafts(self, rows: list[_Row], requests: Sequence[Request]) -> dict[int, list[int]]:
        """Greedy tokens for rows that still follow their draft, many at once.

        Like greedy speculative decoding with the draft as the guess: one forward pass over the row's
        window plus the draft's next tokens gives the model's argmax at every position up to the end of the
        window (where laam.windows would slide); the draft is accepted while it equals the argmax, and at
        the first difference the model's own token is taken and the row leaves draft mode. The output is
        therefore greedy generation (up to float rounding between a window read and cached decoding, which
        matters only at near-ties of the two best logits); the draft only saves one forward pass per token
        when the model has memorized the text.
        """
        plans = []
        for row in rows:
            request = requests[row.index]
            p = len(row.tokens)
            start = context_start(p, self.context, self.stride)
            at = row.draft_at
            n = min(start + self.context - p + 1, request.max_new_tokens - row.generated, len(request.draft) - at)
            plans.append((row, start, request.draft[at:at + n]))
        out = {}
        # A few rows at a time: each reads up to `context` tokens, and attention scores grow with its square.
        per_forward = max(1, 4096 // self.context)
        for i in range(0, len(plans), per_forward):
            chunk = plans[i:i + per_forward]
            inputs = [row.tokens[start:] + guess[:-1] for row, start, guess in chunk]
            width = max(len(x) for x in inputs)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for j, x in enumerate(inputs):
                ids[j, width - len(x):] = torch.tensor(x)
                mask[j, width - len(x):] = 1
            positions = (mask.cumsum(-1) - 1).clamp(min=0)
            hidden = self.model.base_model(input_ids=ids, attention_mask=mask, position_ids=positions,
                                           use_cache=False).last_hidden_state
            self.stats.forward_tokens += int(mask.sum())
            head = self.model.get_output_embeddings()
            for j, (row, _, guess) in enumerate(chunk):
                # The LM head a slice at a time, stopping at the first miss: never a [rows, window, vocab] tensor.
                states, predicted = hidden[j, width - len(guess):], []
                for c in range(0, len(guess), 64):
                    best = head(states[c:c + 64]).max(-1).indices.tolist()
                    predicted.extend(best)
                    if best != guess[c:c + 64]:
                        break
                accepted = 0
                while accepted < len(guess) and predicted[accepted] == guess[accepted]:
                    accepted += 1
                row.draft_at += accepted
                if accepted < len(guess):
                    out[id(row)] = guess[:accepted] + [predicted[accepted]]
                    row.drafting = False
                    # a text that strays from its draft may come back to it (a changed line): look again later,
                    # less eagerly after each verification that bought little
                    row.misses = row.misses + 1 if accepted < 16 else 0
                    row.resync_after = row.generated + len(out[id(row)]) + RESYNC_NGRAM * (1 << min(row.misses, 10))
                else:
                    out[id(row)] = guess
                    if row.draft_at >= len(requests[row.index].draft):
                        row.drafting = False  # the draft is used up: go on decoding
                        row.resync_after = 1 << 62
                self.stats.drafted += len(out[id(row)])
        return out

    @staticmethod
    def _resync(row: _Row, draft: list[int]) -> bool:
        """Resume draft mode if the row's last RESYNC_NGRAM tokens occur in its draft (as prompt-lookup decoding
        does); the draft then continues after them."""
        if row.generated < row.resync_after or row.generated < RESYNC_NGRAM:
            return False
        if row.ngrams is None:
            row.ngrams = {}
            for i in range(len(draft) - RESYNC_NGRAM, -1, -1):  # earliest position wins
                row.ngrams[tuple(draft[i:i + RESYNC_NGRAM])] = i
        found = row.ngrams.get(tuple(row.tokens[-RESYNC_NGRAM:]))
        if found is None or found + RESYNC_NGRAM >= len(draft):
            return False
        row.draft_at, row.drafting = found + RESYNC_NGRAM, True
        return True

    # --- the loop -------------------------------------------------------------------------------
    def run(self, requests: Sequence[Request], sampling: Sampling | None = None,
            on_token: Callable[[int, int], None] | None = None,
            on_done: Callable[[int, list[int]], None] | None = None) -> list[list[int]]:
        """New tokens for every request, in request order. `on_token(i, token)` sees each token as it comes,
        `on_done(i, new_tokens)` each request as it ends (for progress bars and streaming)."""
        import time

        sampling = sampling or Sampling()
        began = time.perf_counter()
        results: list[list[int] | None] = [None] * len(requests)
        waiting = list(range(len(requests)))[::-1]  # pop() takes them in the given order
        rows: list[_Row] = []  # rows with a KV cache, decoded a token at a time
        drafting: list[_Row] = []  # rows still equal to their draft
        unread: list[_Row] = []  # rows that left draft mode: their window is read next
        layers: list[tuple[torch.Tensor, torch.Tensor]] = []  # [rows, heads, T, dim] per layer
        mask = torch.zeros((0, 0), dtype=torch.long)

        def emit(row: _Row, tokens: list[int]) -> bool:
            """Append tokens to a row; True when its request is complete."""
            request = requests[row.index]
            for token in tokens:
                row.tokens.append(token)
                row.generated += 1
                self.stats.tokens += 1
                if on_token:
                    on_token(row.index, token)
                if token == request.stop_id or row.generated >= request.max_new_tokens:
                    results[row.index] = row.tokens[len(request.prompt):]
                    if on_done:
                        on_done(row.index, results[row.index])
                    return True
            return False

        with torch.inference_mode():
            while rows or drafting or unread or waiting:
                # 1. fill free slots with waiting requests (their windows are read below)
                fresh, unread = unread, []
                while waiting and len(rows) + len(drafting) + len(fresh) < self.batch_size:
                    i = waiting.pop()
                    request = requests[i]
                    if not request.prompt:
                        raise LaamError("cannot generate from an empty prompt")
                    if request.max_new_tokens <= 0:
                        results[i] = []
                        continue
                    rng = None if sampling.greedy else torch.Generator().manual_seed(sampling.seed + i)
                    row = _Row(i, list(request.prompt), -1, rng=rng,
                               drafting=bool(sampling.greedy and request.draft))
                    (drafting if row.drafting else fresh).append(row)
                # 2. rows following their draft: verified a window at a time
                if drafting:
                    produced = self._verify_drafts(drafting, requests)
                    still = []
                    for row in drafting:
                        if emit(row, produced[id(row)]):
                            continue
                        (still if row.drafting else unread).append(row)
                    drafting = still
                if not rows and not fresh:
                    continue
                # 3. rows whose next prediction needs a new window (fresh or sliding) are re-read
                refill = fresh[:]
                keep, kept_at = [], []
                for position, row in enumerate(rows):
                    start = context_start(len(row.tokens), self.context, self.stride)
                    if start != row.start:
                        row.start = start
                        refill.append(row)
                    else:
                        keep.append(row)
                        kept_at.append(position)
                for row in fresh:
                    row.start = context_start(len(row.tokens), self.context, self.stride)
                next_logits = {}
                if keep:
                    if len(keep) != len(rows):
                        index = torch.tensor(kept_at, dtype=torch.long)
                        layers = [(k[index], v[index]) for k, v in layers]
                        mask = mask[index]
                    step_mask = torch.cat([mask, torch.ones((len(keep), 1), dtype=torch.long)], dim=1)
                    ids = torch.tensor([[r.tokens[-1]] for r in keep])
                    positions = torch.tensor([[len(r.tokens) - 1 - r.start] for r in keep])
                    cache = _new_cache(layers)
                    logits = self._forward(ids, step_mask, positions, cache)
                    layers, mask = _layer_tensors(cache), step_mask
                    for r, lg in zip(keep, logits):
                        next_logits[id(r)] = lg
                else:
                    layers, mask = [], torch.zeros((0, 0), dtype=torch.long)
                if refill:
                    # Slides all need context + 1 - stride tokens; group by window length to avoid padding.
                    groups: dict[int, list[_Row]] = {}
                    for row in refill:
                        groups.setdefault(len(row.tokens) - row.start, []).append(row)
                    for group in groups.values():
                        logits, new_layers, new_mask = self._read_windows(group)
                        layers, mask = _append_rows(layers, mask, new_layers, new_mask)
                        for r, lg in zip(group, logits):
                            next_logits[id(r)] = lg
                    keep = keep + [r for g in groups.values() for r in g]
                rows = keep
                # 4. choose, append, retire finished rows
                chosen = _choose(torch.stack([next_logits[id(r)] for r in rows]), rows, sampling)
                survivors = []
                for position, (row, token) in enumerate(zip(rows, chosen)):
                    if emit(row, [token]):
                        continue
                    draft = requests[row.index].draft
                    if draft and sampling.greedy and self._resync(row, draft):
                        drafting.append(row)  # leaves the cache; verified from its window next round
                    else:
                        survivors.append(position)
                if len(survivors) != len(rows):
                    index = torch.tensor(survivors, dtype=torch.long)
                    rows = [rows[p] for p in survivors]
                    layers = [(k[index], v[index]) for k, v in layers]
                    mask = mask[index]
                layers, mask = _trim(layers, mask)
        self.stats.seconds += time.perf_counter() - began
        return results  # type: ignore[return-value]


def _append_rows(layers, mask, new_layers, new_mask):
    """Stack two left-padded caches (rows of both), right-aligned to the longer one."""
    if not layers:
        return new_layers, new_mask
    width = max(mask.shape[1], new_mask.shape[1])

    def left_pad(t: torch.Tensor, n: int) -> torch.Tensor:
        if n == 0:
            return t
        shape = list(t.shape)
        shape[-2 if t.dim() == 4 else -1] = n
        return torch.cat([t.new_zeros(shape), t], dim=-2 if t.dim() == 4 else -1)

    a, b = width - mask.shape[1], width - new_mask.shape[1]
    merged = [(torch.cat([left_pad(k, a), left_pad(nk, b)]), torch.cat([left_pad(v, a), left_pad(nv, b)]))
              for (k, v), (nk, nv) in zip(layers, new_layers)]
    return merged, torch.cat([left_pad(mask, a), left_pad(new_mask, b)])


def _trim(layers, mask):
    """Drop leading cache columns that no row attends to (rows' windows shrink when they slide)."""
    if mask.numel() == 0:
        return layers, mask
    used = int(mask.sum(-1).max())
    drop = mask.shape[1] - used
    if drop <= 0:
        return layers, mask
    return [(k[:, :, drop:], v[:, :, drop:]) for k, v in layers], mask[:, drop:]


def generate(model, requests: Sequence[Request], context: int, stride: int, batch_size: int = 64,
             sampling: Sampling | None = None, **callbacks) -> list[list[int]]:
    """Convenience wrapper: new tokens of each request (see WindowedGenerator.run)."""
    return WindowedGenerator(model, context, stride, batch_size).run(requests, sampling, **callbacks)


def window_logits(model, ids: Sequence[int], context: int, stride: int) -> Iterator[tuple[int, torch.Tensor]]:
    """Teacher-forced logits of a known sequence under the window policy, one training window at a time.

    Yields (first_position, logits) where logits[j] predicts ids[first_position + j] from exactly the
    context greedy generation gives it (laam.windows.context_start). Positions 1 .. len(ids)-1 are each
    covered once, so argmax agreement here equals what greedy regeneration reproduces.
    """
    with torch.inference_mode():
        for start, end, first in windows(len(ids), context, stride):
            if end - start < 2:
                continue
            x = torch.tensor([list(ids[start:end - 1])])
            logits = model(input_ids=x).logits[0]
            yield first, logits[first - 1 - start:]


def step_in_lockstep(model, tokens: torch.Tensor, header_tokens: Sequence[int], lengths: Sequence[int], context: int,
                     stride: int, choose: Callable, advance: Callable[[int], None] = lambda n: None) -> None:
    """Walk a batch of records through the model in lockstep, position by position (the compressor's engine).

    `tokens` is a [rows, longest] int64 tensor on the CPU holding every token known so far (headers always;
    the entropy encoder knows all, the decoder fills them in) and padding past each record's end. At
    position p the model reads tokens [context_start(p), p) of every row: the KV cache grows one token a
    step and is rebuilt by a prefill when the window slides. For the rows whose token p is coded
    (header <= p < length), `choose(p, rows, probs)` gets their float32 probabilities as numpy arrays and
    returns their tokens at p.

    Unlike WindowedGenerator, every row sits at the same position, so no padding masks, no row
    replacement and no drafts: the encoder and the decoder run exactly the same shapes, which keeps
    their probabilities bit-identical.
    """
    import numpy as np

    device = next(model.parameters()).device
    kwargs = {keep_kwarg(model): 1}  # only the last position's logits: [rows, vocab], not [rows, window, vocab]
    cache_name = cache_kwarg(model)
    cache, window_start = None, -1
    lengths_np, headers_np = np.asarray(lengths), np.asarray(header_tokens)
    for p in range(int(headers_np.min()), tokens.shape[1]):
        start = context_start(p, context, stride)
        if start != window_start:  # first step or a slide: re-read the window
            cache, window_start = _new_cache([]), start
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
