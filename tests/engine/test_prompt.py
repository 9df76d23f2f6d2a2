"""engine.prompt.generate, the work behind `laam generate`, called as a library function: a path's header prompt
gives back the memorized file's exact bytes, streamed or not, and a raw prompt is continued."""

from __future__ import annotations

import pytest

from laam.engine import Sampling
from laam.engine.prompt import generate
from laam.errors import LaamError

PATH = "linux/lib/ctype.c"


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    import torch

    from laam.model.folder import load_model

    previous = torch.get_num_threads()
    yield load_model(tiny_model_dir, threads=1)
    torch.set_num_threads(previous)


def test_a_path_gives_the_files_bytes_and_streams_the_same(loaded, tiny_corpus):
    original = next(f.data for f in tiny_corpus.files if f.path == PATH)
    result = generate(loaded, path=PATH)
    assert result.data == original and result.ended and result.tokens > 1
    chunks: list[bytes] = []
    streamed = generate(loaded, path=PATH, on_bytes=chunks.append)
    assert b"".join(chunks) == streamed.data == original and len(chunks) > 1


def test_max_new_tokens_cuts_the_output(loaded, tiny_corpus):
    original = next(f.data for f in tiny_corpus.files if f.path == PATH)
    result = generate(loaded, path=PATH, max_new_tokens=5)
    assert result.tokens == 5 and not result.ended and original.startswith(result.data) and result.data != original


def test_a_raw_prompt_is_continued_and_exactly_one_is_given(loaded):
    sampled = generate(loaded, prompt="<|start_file|><|start_header|>linux/lib/", max_new_tokens=20,
                       sampling=Sampling(greedy=False, temperature=1.0, seed=3))
    assert 0 < sampled.tokens <= 20
    for both in ({}, {"path": PATH, "prompt": "x"}):
        with pytest.raises(LaamError, match="exactly one"):
            generate(loaded, **both)
    with pytest.raises(LaamError, match="max_new_tokens must be >= 1, got 0"):
        generate(loaded, path=PATH, max_new_tokens=0)
