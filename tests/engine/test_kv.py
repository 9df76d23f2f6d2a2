"""The engine's KV caches: appending in place into spare columns gives the tensors concatenation gives."""

from __future__ import annotations

import torch

from laam.engine.kv import ROOM, KVRows, new_cache


def states(rows: int, width: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn((rows, 3, width, 4), generator=g), torch.randn((rows, 3, width, 4), generator=g)


def test_steps_append_in_place_and_equal_concatenation():
    cache = new_cache()
    keys, values = states(2, 5, 0)
    cache.update(keys, values, 0)
    first = cache.layers[0].keys.data_ptr()
    for step in range(ROOM + 3):  # past the spare columns: one reallocation
        k, v = states(2, 1, step + 1)
        got_k, got_v = cache.update(k, v, 0)
        keys, values = torch.cat([keys, k], dim=-2), torch.cat([values, v], dim=-2)
        assert torch.equal(got_k, keys) and torch.equal(got_v, values)
        if step < ROOM - 1:
            assert got_k.data_ptr() == first  # written into the buffer's spare columns, not copied
    assert cache.layers[0].keys.data_ptr() != first


def test_a_cache_made_from_rows_keeps_them_and_appends_to_trimmed_and_selected_rows():
    cache = new_cache()
    cache.update(*states(3, 6, 0), 0)
    mask = torch.ones((3, 6), dtype=torch.long)
    mask[:, :2] = 0  # no row attends to the first two columns any more
    rows = KVRows.from_cache(cache, mask).trim()
    assert rows.layers[0][0].shape[2] == 4
    for kv in (rows, rows.select([2, 0])):  # a view of the buffer (room left), then a copy (none)
        before = [(k.clone(), v.clone()) for k, v in kv.layers]
        step = new_cache(kv.layers)
        k, v = states(kv.mask.shape[0], 1, 9)
        got_k, got_v = step.update(k, v, 0)
        assert torch.equal(got_k, torch.cat([before[0][0], k], dim=-2))
        assert torch.equal(got_v, torch.cat([before[0][1], v], dim=-2))
        assert torch.equal(kv.layers[0][0], before[0][0])  # the rows handed in are unchanged
