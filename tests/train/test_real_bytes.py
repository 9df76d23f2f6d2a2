"""The "memorized" claim is decided against the real bytes. The demonstration: overwrite 40 token ids of
linux/lib/ctype.c in the token cache's ids.bin (same size), train the `tiny` preset again. The sealed cache is
rebuilt with a one-line note; and a damaged cache that passes its seal (sealed again after the damage) still
gives no "memorized" claim, since the final check and --verify compare with the files' real bytes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from laam.data.tokenizer import load_tokenizer
from laam.data.tokens import FILES, build_token_cache, untrue_records
from laam.io import seal
from tests.faults import cli

DAMAGED = "linux/lib/ctype.c"


def _damage(cache, tokenizer) -> None:
    """40 body ids of ctype.c replaced by the id of `Z` (ids.bin keeps its size)."""
    i = cache.paths.index(DAMAGED)
    at = int(cache.offsets[i] + cache.body_starts[i]) + 100
    ids = np.memmap(cache.folder / "ids.bin", dtype=cache.ids.dtype, mode="r+")
    size = (cache.folder / "ids.bin").stat().st_size
    ids[at:at + 40] = tokenizer.convert_tokens_to_ids("Z")
    ids.flush()
    del ids
    assert (cache.folder / "ids.bin").stat().st_size == size


def _damaged_cache(tiny_corpus, tiny_tokenizer_dir, cache_root: Path, reseal: bool):
    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    cache = build_token_cache(tiny_corpus, tokenizer, tiny_tokenizer_dir, cache_root)
    assert untrue_records(cache, tiny_corpus, tokenizer) == {}
    _damage(cache, tokenizer)
    if reseal:  # damage that happened before the seal was written: the seal holds, the ids are still wrong
        seal(cache.folder, FILES)
    return cache


def _train(capsys, tarball, tiny_tokenizer_dir, cache_root: Path, out: Path):
    return cli(capsys, "train", tarball, "--cache", cache_root, "--preset", "tiny", "--tokenizer",
               tiny_tokenizer_dir, "--threads", "1", "--out", out, "-q")


def _regenerated_exactly(model_dir: Path, corpus) -> dict[str, bool]:
    """Each file regenerated greedily by the engine from its path, compared with the archive's bytes."""
    from laam.model.folder import load_model
    from laam.proof.regenerate import regenerate

    loaded = load_model(model_dir)
    done = regenerate(loaded.model, loaded.tokenizer, corpus.files, loaded.info.policy)
    return {r.file.path: r.data == r.file.data for r in done}


@pytest.mark.slow
def test_damaged_token_cache_is_rebuilt_and_the_claim_holds(tarball, capsys, tiny_corpus, tiny_tokenizer_dir,
                                                            tmp_path):
    cache = _damaged_cache(tiny_corpus, tiny_tokenizer_dir, tmp_path / "cache", reseal=False)
    ran = _train(capsys, tarball, tiny_tokenizer_dir, tmp_path / "cache", tmp_path / "run")
    assert ran.code == 0, ran.err[-3000:]
    notes = [line for line in ran.err.splitlines() if "token cache" in line]
    assert len(notes) == 1 and str(cache.folder) in notes[0] and "ids.bin" in notes[0], ran.err[-3000:]
    assert untrue_records(build_token_cache(tiny_corpus, load_tokenizer(tiny_tokenizer_dir), tiny_tokenizer_dir,
                                            tmp_path / "cache"), tiny_corpus, load_tokenizer(tiny_tokenizer_dir)) == {}
    training = json.loads((tmp_path / "run" / "model" / "laam.json").read_text())["training"]
    exact = _regenerated_exactly(tmp_path / "run" / "model", tiny_corpus)
    assert training["status"] == "memorized" and training["memorized"] == 1.0
    assert all(exact.values()), [path for path, ok in exact.items() if not ok]


@pytest.mark.slow
def test_damage_that_passes_the_seal_gives_no_memorized_claim(tarball, capsys, tiny_corpus, tiny_tokenizer_dir,
                                                              tmp_path):
    cache = _damaged_cache(tiny_corpus, tiny_tokenizer_dir, tmp_path / "cache", reseal=True)
    assert set(untrue_records(cache, tiny_corpus, load_tokenizer(tiny_tokenizer_dir))) == {DAMAGED}
    ran = _train(capsys, tarball, tiny_tokenizer_dir, tmp_path / "cache", tmp_path / "run")
    assert ran.code == 0, ran.err[-3000:]
    training = json.loads((tmp_path / "run" / "model" / "laam.json").read_text())["training"]
    exact = _regenerated_exactly(tmp_path / "run" / "model", tiny_corpus)
    assert not exact[DAMAGED]  # the model learned the damaged ids: this file does not come back
    assert training["status"] != "memorized" and training["memorized"] < 1.0
    assert training["untrue_files"] == [DAMAGED]
    regeneration = training["regeneration"]
    assert DAMAGED in regeneration["wrong"] and regeneration["exact"] == sum(exact.values()) < 12
    assert "12 of 12 files exact" not in ran.err + ran.out
