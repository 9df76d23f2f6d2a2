"""Training batches: every record's laam.windows windows, in one shuffled order per epoch.

Window k of a record reads tokens [start, end-1) and is scored only on targets [first_target, end),
each predicted from exactly the tokens that greedy generation under the same WindowPolicy will have
seen. Short windows are right-padded; padding sits after every real token, so under the causal mask
it changes no real prediction, and its labels are -100 (nothing to learn there). No attention mask
is needed, which keeps SDPA on its fast causal path.
"""

from __future__ import annotations

import numpy as np
import torch

from laam.data.tokens import TokenCache
from laam.windows import WindowPolicy

IGNORE = -100


class WindowSet:
    """Every training window of every record: rows of (record, start, end, first_target)."""

    def __init__(self, cache: TokenCache, policy: WindowPolicy):
        self.cache, self.policy = cache, policy
        rows = [(r, s, e, f) for r in range(len(cache.lengths)) for s, e, f in policy.windows(int(cache.lengths[r]))]
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1, 4)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def targets(self) -> int:
        """Tokens scored per epoch: every token but each record's first."""
        return int((self.cache.lengths - 1).sum())

    def batch(self, indices, pad_id: int) -> dict[str, torch.Tensor]:
        """input_ids [B, T], labels [B, T] (-100 where nothing is scored), body [B, T] (targets after the header).

        T is the longest window in the batch (at most `context`), so a corpus of short files does not pay for
        a full context of padding.
        """
        rows = self.rows[np.asarray(indices)]
        width = int((rows[:, 2] - rows[:, 1] - 1).max())
        inputs = np.full((len(rows), width), pad_id, dtype=np.int64)
        labels = np.full((len(rows), width), IGNORE, dtype=np.int64)
        body = np.zeros((len(rows), width), dtype=bool)
        for i, (record, start, end, first) in enumerate(rows):
            tokens = self.cache.record(record)[start:end].astype(np.int64)
            n = len(tokens) - 1
            inputs[i, :n] = tokens[:-1]
            positions = np.arange(start + 1, end)  # position of each target in its record
            scored = positions >= first
            labels[i, :n] = np.where(scored, tokens[1:], IGNORE)
            body[i, :n] = scored & (positions >= self.cache.body_starts[record])
        return {"input_ids": torch.from_numpy(inputs), "labels": torch.from_numpy(labels),
                "body": torch.from_numpy(body)}


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled window order of one epoch: a pure function of (seed, epoch), so resuming needs only the
    epoch and the position within it."""
    return np.random.default_rng([seed, epoch]).permutation(n)
