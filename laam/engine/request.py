"""What the engine is asked (Request), what it keeps per sequence while working (Row), and what it counts."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Request:
    """One sequence to continue: the prompt's token ids and how many tokens at most to add."""

    prompt: list[int]
    max_new_tokens: int
    stop_id: int | None = None  # generation ends after emitting this token (it is kept in the output)
    # Greedy only: tokens the output is expected to be (the original file, when auditing). They are checked,
    # never trusted: see engine.drafts.
    draft: list[int] | None = None
    # With a draft: end at the first token that differs from it (a check that only needs to know where the
    # model leaves the text; the differing token is the last of the output).
    until_divergence: bool = False


@dataclass
class Row:
    """A request in flight."""

    index: int  # into the request list
    tokens: list[int]  # prompt + generated so far
    start: int = -1  # first token of the window in the KV cache (-1: no window read yet)
    generated: int = 0
    rng: torch.Generator | None = None
    drafting: bool = False  # following its draft: verified a window at a time
    draft_at: int = 0  # next draft token expected
    diverged: bool = False  # its output left the draft at least once
    resync_after: int = 0  # decoded rows look for their place in the draft again from this many tokens on
    misses: int = 0  # verifications in a row that accepted little (backs re-synchronization off)
    ngrams: dict | None = None  # draft n-gram -> position, built when first needed


@dataclass
class GenerationStats:
    tokens: int = 0  # new tokens produced
    forward_tokens: int = 0  # tokens run through the model (prefills included)
    refills: int = 0  # window (re)reads: first prompt reads and slides
    drafted: int = 0  # tokens produced by draft verification (each one the model's own argmax)
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
