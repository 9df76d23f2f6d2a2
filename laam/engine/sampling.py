"""How the next token is chosen from the logits: greedy (the proof's decoding), or sampled."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from laam.errors import LaamError


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

    def generator(self, request_index: int) -> torch.Generator | None:
        """One generator per request: a sampled file does not depend on which others share its batch."""
        return None if self.greedy else torch.Generator().manual_seed(self.seed + request_index)

    def choose(self, logits: torch.Tensor, generators: list[torch.Generator | None]) -> list[int]:
        """Next token of each row from its last logits [n, vocab]."""
        if self.greedy:
            return logits.max(-1).indices.tolist()  # = argmax (first maximum on ties), ~2x faster on CPU
        logits = logits.float() / self.temperature
        if self.top_k:
            kth = torch.topk(logits, min(self.top_k, logits.shape[-1]), dim=-1).values[:, -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
            cumulative = sorted_logits.softmax(-1).cumsum(-1)
            drop = cumulative - sorted_logits.softmax(-1) >= self.top_p  # keep the smallest set reaching top_p
            logits = logits.scatter(-1, order, sorted_logits.masked_fill(drop, float("-inf")))
        probs = logits.softmax(-1)
        return [int(torch.multinomial(probs[i], 1, generator=g)) for i, g in enumerate(generators)]
