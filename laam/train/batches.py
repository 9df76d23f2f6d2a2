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

from laam.data.records import prefix_paths
from laam.data.tokens import TokenCache
from laam.engine.forcing import IGNORE
from laam.windows import WindowPolicy


class WindowSet:
    """Every training window of every record: rows of (record, start, end, first_target)."""

    def __init__(self, cache: TokenCache, policy: WindowPolicy):
        self.cache, self.policy = cache, policy
        rows = [(r, s, e, f) for r in range(len(cache.lengths)) for s, e, f in policy.windows(int(cache.lengths[r]))]
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1, 4)
        # where each record's <|end_header|> is a target the checks score (-1: a path that is a prefix of another
        # path, which the decoders end themselves; data.records.prefix_paths)
        prefixes = prefix_paths(cache.paths)
        self.header_ends = np.array([-1 if path in prefixes else int(start) - 1
                                     for path, start in zip(cache.paths, cache.body_starts)], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def targets(self) -> int:
        """Tokens scored per epoch: every token but each record's first."""
        return int((self.cache.lengths - 1).sum())

    def batch(self, indices, pad_id: int) -> dict[str, torch.Tensor]:
        """input_ids [B, T], labels [B, T] (-100 where nothing is scored), body [B, T] (targets after the header),
        header_end [B, T] (the target that ends the path: `<|end_header|>`, where the checks score it).

        T is the longest window in the batch (at most `context`), so a corpus of short files does not pay for
        a full context of padding.
        """
        rows = self.rows[np.asarray(indices)]
        width = int((rows[:, 2] - rows[:, 1] - 1).max())
        inputs = np.full((len(rows), width), pad_id, dtype=np.int64)
        labels = np.full((len(rows), width), IGNORE, dtype=np.int64)
        body = np.zeros((len(rows), width), dtype=bool)
        header_end = np.zeros((len(rows), width), dtype=bool)
        for i, (record, start, end, first) in enumerate(rows):
            tokens = self.cache.record(record)[start:end].astype(np.int64)
            n = len(tokens) - 1
            inputs[i, :n] = tokens[:-1]
            positions = np.arange(start + 1, end)  # position of each target in its record
            scored = positions >= first
            labels[i, :n] = np.where(scored, tokens[1:], IGNORE)
            body[i, :n] = scored & (positions >= self.cache.body_starts[record])
            header_end[i, :n] = scored & (positions == self.header_ends[record])
        return {"input_ids": torch.from_numpy(inputs), "labels": torch.from_numpy(labels),
                "body": torch.from_numpy(body), "header_end": torch.from_numpy(header_end)}


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled window order of one epoch: a pure function of (seed, epoch), so resuming needs only the
    epoch and the position within it."""
    return np.random.default_rng([seed, epoch]).permutation(n)


class WindowSampler:
    """Which windows each optimizer step trains on: uniform epochs, then (with replay) error-focused rounds.

    Uniform: one permutation of all windows per epoch (epoch_order), `batch_size` windows a step, so the
    data position is the step number. Error-focused replay: after each memorization check the check's
    per-window result sets how often each window is drawn per round — `wrong` times for a window with a
    wrong body token, once for one whose smallest body margin (logit of the right token minus the best
    other) is under `margin`, and with probability `rest` for the others — and rounds (each a shuffle of
    those draws, a pure function of seed, the check's step and the round number) follow one another
    until the next check. The state that resume needs is the last plan's step and weights (state_dict).
    """

    def __init__(self, n: int, batch_size: int, seed: int, replay: bool = False, wrong: float = 4.0,
                 margin: float = 2.0, rest: float = 0.25):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.replay, self.wrong, self.margin, self.rest = replay, wrong, margin, rest
        self.plan_step = -1  # step of the check whose result drives sampling; -1: uniform epochs
        self.weights = np.ones(n)
        self._rounds: list[np.ndarray] = []  # rounds of the current plan generated so far
        self._ends: list[int] = []  # cumulative draws at the end of each round
        self._epoch: tuple[int, np.ndarray | None] = (-1, None)  # (epoch, its order) of the last uniform step

    def indices(self, step: int) -> np.ndarray:
        """The global batch of optimizer step `step` (0-based): `batch_size` window indices."""
        if self.plan_step < 0:
            stream = np.arange(step * self.batch_size, (step + 1) * self.batch_size)
            epochs = stream // self.n
            return np.concatenate([self._epoch_order(int(e))[stream[epochs == e] % self.n] for e in np.unique(epochs)])
        first = (step - self.plan_step) * self.batch_size
        while not self._ends or self._ends[-1] < first + self.batch_size:
            self._rounds.append(self._round(len(self._rounds)))
            self._ends.append((self._ends[-1] if self._ends else 0) + len(self._rounds[-1]))
        r = int(np.searchsorted(self._ends, first, side="right"))  # the round holding draw `first`
        offset = first - (self._ends[r - 1] if r else 0)
        return np.concatenate(self._rounds[r:])[offset:offset + self.batch_size]

    def _epoch_order(self, epoch: int) -> np.ndarray:
        """epoch_order, kept for the epoch in progress: a step needs a few windows of it, not a new shuffle of all
        of them (on a whole modern tree that is millions of windows every step)."""
        if self._epoch[0] != epoch:
            self._epoch = (epoch, epoch_order(self.n, self.seed, epoch))
        return self._epoch[1]

    def _round(self, number: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.plan_step, number])
        whole = np.floor(self.weights).astype(np.int64)
        counts = whole + (rng.random(self.n) < self.weights - whole)
        draws = np.repeat(np.arange(self.n), counts)
        return rng.permutation(draws if len(draws) else np.arange(self.n))

    def update(self, step: int, wrong: np.ndarray, margin: np.ndarray) -> None:
        """A memorization check at `step` measured, per window, wrong body tokens and the smallest body margin."""
        if not self.replay:
            return
        self.weights = np.where(np.asarray(wrong) > 0, self.wrong,
                                np.where(np.asarray(margin) < self.margin, 1.0, self.rest)).astype(np.float64)
        self.plan_step, self._rounds, self._ends = step, [], []

    def state_dict(self) -> dict:
        return {"plan_step": self.plan_step, "weights": torch.from_numpy(self.weights.copy())}

    def load_state_dict(self, state: dict) -> None:
        self.plan_step, self.weights = int(state["plan_step"]), state["weights"].numpy().astype(np.float64)
        self._rounds, self._ends = [], []
