"""Positions no model can memorize (laam.train.ambiguity), against a plain dictionary of contexts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from laam.data.records import prefix_paths
from laam.data.tokens import TokenCache
from laam.train.ambiguity import ambiguous_positions
from laam.windows import WindowPolicy


def make_cache(records: list[list[int]], body_starts: list[int]) -> TokenCache:
    lengths = np.array([len(r) for r in records])
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return TokenCache(Path("."), np.concatenate(records).astype(np.uint16), [f"f{i}" for i in range(len(records))],
                      offsets, lengths, np.array(body_starts))


def by_dictionary(cache: TokenCache, policy: WindowPolicy) -> list[tuple[str, int]]:
    """The checked positions (each path's <|end_header|>, unless the path is a prefix of another's, and the body)
    whose context is followed by two different tokens."""
    prefixes = prefix_paths(cache.paths)
    checked = [range(int(cache.body_starts[r]) - (cache.paths[r] not in prefixes), len(cache.record(r)))
               for r in range(len(cache.paths))]
    following: dict[tuple, set] = {}
    for r in range(len(cache.paths)):
        tokens = cache.record(r).tolist()
        for p in checked[r]:
            following.setdefault(tuple(tokens[policy.context_start(p):p]), set()).add(tokens[p])
    out = []
    for r in range(len(cache.paths)):
        tokens = cache.record(r).tolist()
        out += [(cache.paths[r], p) for p in checked[r] if len(following[tuple(tokens[policy.context_start(p):p])]) > 1]
    return sorted(out)


def test_a_shared_context_with_two_continuations_is_found():
    records = [[0, 1, 5, 6, 7, 8, 9], [0, 2, 5, 6, 7, 8, 10], [0, 3, 5, 6, 7, 8, 9, 4]]
    cache = make_cache(records, [3, 3, 3])  # token 5 ends each path
    policy = WindowPolicy(4, 2)  # position 6 is predicted from tokens [2, 6): 5 6 7 8 in every record
    assert sorted(ambiguous_positions(cache, policy)) == [("f0", 6), ("f1", 6), ("f2", 6)]
    # the path's end is checked too: token 1, 2 or 3 ending a path read from token 0 alone is a conflict
    ends_after_one_token = make_cache(records, [2, 2, 2])
    assert sorted(ambiguous_positions(ends_after_one_token, policy)) == [
        ("f0", 1), ("f0", 6), ("f1", 1), ("f1", 6), ("f2", 1), ("f2", 6)]
    assert ambiguous_positions(cache, WindowPolicy(6, 2)) == []  # with the file's own token in view: none


def test_matches_a_dictionary_on_real_records(tiny_corpus, tiny_tokenizer_dir, tmp_path):
    from laam.data.tokenizer import load_tokenizer
    from laam.data.tokens import build_token_cache

    cache = build_token_cache(tiny_corpus, load_tokenizer(tiny_tokenizer_dir), tiny_tokenizer_dir, tmp_path)
    for policy in (WindowPolicy(6, 3), WindowPolicy(8, 8), WindowPolicy(24, 16)):
        assert sorted(ambiguous_positions(cache, policy)) == by_dictionary(cache, policy)
    assert ambiguous_positions(cache, WindowPolicy(6, 3))  # short contexts repeat in C code
