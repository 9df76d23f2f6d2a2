"""Positions no model can memorize: the same context, under the window policy, followed by different tokens.

A body token is predicted from exactly tokens [context_start(p), p) of its record (laam.windows). When two
positions see identical contexts but continue differently, greedy decoding can get at most one of them
right, so 100% is out of reach for any weights. Measured on Linux 1.0 (vocab 8192): 12 such positions at
context 256 (stride 128 or 192), none at 384/256, 512/256, 512/384 or 1024/512 — so a whole-kernel recipe
needs a longer context than the CPU demos' 256. The trainer reports the count before training.

Contexts are compared by a polynomial hash mod 2^64 of their tokens (with their length), computed for every
position at once from prefix sums; a hash collision could only add a false report, never hide a conflict.
"""

from __future__ import annotations

import numpy as np

from laam.data.records import prefix_paths
from laam.data.tokens import TokenCache
from laam.windows import WindowPolicy

_BASE = np.uint64(0x100000001B3)  # odd, so invertible mod 2^64
_MIX = np.uint64(0x9E3779B97F4A7C15)


def _powers(base: np.uint64, n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.uint64)
    out[0] = 1
    with np.errstate(over="ignore"):
        out[1:] = base
        return np.cumprod(out)


def ambiguous_positions(cache: TokenCache, policy: WindowPolicy) -> list[tuple[str, int]]:
    """(path, position) of every checked token (train.memorization: the body and the path's end) whose context
    also precedes another token elsewhere in the corpus (or elsewhere in its own record); empty when 100% is
    possible."""
    inverse = pow(int(_BASE), -1, 1 << 64)
    longest = int(cache.lengths.max()) + 1
    up, down = _powers(_BASE, longest), _powers(np.uint64(inverse), longest)
    keys, following, where = [], [], []
    prefixes = prefix_paths(cache.paths)
    with np.errstate(over="ignore"):
        for r in range(len(cache.paths)):
            tokens = cache.record(r).astype(np.uint64) + np.uint64(1)
            prefix = np.concatenate([[np.uint64(0)], np.cumsum(tokens * down[:len(tokens)], dtype=np.uint64)])
            # the context of every scored position, window by window (targets [first, end) read from `start`)
            windows = policy.windows(len(tokens))
            starts = np.concatenate([np.full(end - first, start) for start, end, first in windows])
            positions = np.concatenate([np.arange(first, end) for _, end, first in windows])
            # the body and the <|end_header|> before it, which the checks score unless the path is a prefix
            body = positions >= int(cache.body_starts[r]) - int(cache.paths[r] not in prefixes)
            positions, starts = positions[body], starts[body]
            # sum over j in [start, p) of token_j * BASE^(p-1-j), tagged with the context's length
            hashed = (prefix[positions] - prefix[starts]) * up[positions - 1] if len(positions) else positions
            keys.append(np.asarray(hashed, dtype=np.uint64) ^ ((positions - starts).astype(np.uint64) * _MIX))
            following.append(tokens[positions])
            where.append(np.stack([np.full(len(positions), r), positions], 1))
    if not keys:
        return []
    keys, following, where = np.concatenate(keys), np.concatenate(following), np.concatenate(where)
    order = np.lexsort((following, keys))
    keys, following, where = keys[order], following[order], where[order]
    group_start = np.concatenate([[True], keys[1:] != keys[:-1]])
    group = np.cumsum(group_start) - 1
    first_token = following[group_start][group]
    last_token = following[np.concatenate([group_start[1:], [True]])][group]
    mixed = first_token != last_token  # every position of a context group that continues in two ways
    return [(cache.paths[int(r)], int(p)) for r, p in where[mixed]]


def describe(found: list[tuple[str, int]], policy: WindowPolicy) -> str:
    shown = ", ".join(f"{path}:{position}" for path, position in found[:4])
    return (f"{len(found)} body positions follow a context (context {policy.context}, stride {policy.stride}) that "
            f"another position continues differently ({shown}{', ...' if len(found) > 4 else ''}): no model can "
            "reach 100% under this window policy; a longer --context avoids it")
