"""The checks score the `<|end_header|>` that ends each path: a reader's decoder given only the bare path needs the
model to end it, so a model that cannot is not called memorized. After a path that is a prefix of another's
(`Readme` beside `Readme.linux`) no model can, every decoder ends it itself, and no check scores it."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

from laam.data.records import END_HEADER, PAD, prefix_paths
from laam.data.tokenizer import special_ids
from laam.data.tokens import build_token_cache
from laam.model.folder import load_model
from laam.model.info import read_model_info
from laam.train.batches import IGNORE, WindowSet
from laam.train.memorization import measure_memorization, summarize, verify_records


def test_prefix_paths_are_the_paths_another_extends():
    paths = ["a/Readme.linux", "b/x.c", "a/Readme", "a/Read", "b/x.h"]
    assert prefix_paths(paths) == {"a/Readme", "a/Read"}
    assert prefix_paths(["b/x.c", "b/x.h"]) == set()


def test_the_header_end_is_scored_except_after_a_prefix_path(tmp_path):
    from laam.proof.margin import in_memory_windows
    from laam.windows import WindowPolicy

    # three records: [start_file, start_header, path..., end_header, body...], the second's path a prefix of the third's
    records = [[1, 2, 10, 11, 3, 20, 21, 4], [1, 2, 12, 3, 22, 4], [1, 2, 12, 13, 3, 23, 4]]
    starts = [r.index(3) + 1 for r in records]
    window_set = in_memory_windows(records, starts, WindowPolicy(8, 4), ["x.c", "Readme", "Readme.linux"])
    batch = window_set.batch(np.arange(len(window_set)), pad_id=0)
    ends = {}
    for row, (record, start, _end, _first) in enumerate(window_set.rows.tolist()):
        for i in np.nonzero(batch["header_end"][row].numpy())[0]:
            assert int(batch["labels"][row, i]) == 3 and batch["labels"][row, i] != IGNORE
            ends[record] = start + 1 + int(i)
    assert ends == {0: starts[0] - 1, 2: starts[2] - 1}  # not after "Readme", which "Readme.linux" extends


@contextmanager
def never_ends_a_path(model, end_header: int):
    """The model's logit for `<|end_header|>` pushed far below every other: its bodies stay right."""
    def hook(_module, _inputs, logits):
        logits[..., end_header] = -1e4
        return logits

    handle = model.lm_head.register_forward_hook(hook)
    try:
        yield model
    finally:
        handle.remove()


@pytest.fixture(scope="module")
def tiny(tiny_model_dir, tiny_corpus, tmp_path_factory):
    loaded = load_model(tiny_model_dir, threads=1)
    cache = build_token_cache(tiny_corpus, loaded.tokenizer, tiny_model_dir, tmp_path_factory.mktemp("cache"))
    return loaded, WindowSet(cache, read_model_info(tiny_model_dir).policy)


def test_a_model_that_cannot_end_a_path_is_not_memorized(tiny):
    loaded, window_set = tiny
    special = special_ids(loaded.tokenizer)
    files = len(window_set.cache.paths)
    memo = summarize(measure_memorization(loaded.model, window_set, special[PAD]))
    assert memo["memorized"] == 1.0  # the tiny model ends every path and gives every body back
    with never_ends_a_path(loaded.model, special[END_HEADER]):
        memo = summarize(measure_memorization(loaded.model, window_set, special[PAD]))
    assert memo["body_total"] - memo["body_correct"] == files  # each path's end wrong, nothing else
    assert memo["memorized"] < 1.0


def test_verify_regenerates_from_the_bare_path(tiny, tiny_corpus):
    loaded, window_set = tiny
    policy = window_set.policy
    report = verify_records(loaded.model, tiny_corpus.files, policy, loaded.tokenizer)
    assert report.exact == report.files == len(tiny_corpus.files) and not report.wrong
    with never_ends_a_path(loaded.model, special_ids(loaded.tokenizer)[END_HEADER]):
        report = verify_records(loaded.model, tiny_corpus.files, policy, loaded.tokenizer)
    assert report.exact == 0 and set(report.wrong) == {f.path for f in tiny_corpus.files}
