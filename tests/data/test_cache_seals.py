"""Every cache entry is checked on read against the sizes and SHA-256s its checksums.json recorded when
it was written; a damaged or unsealed entry is removed with one line naming it and built again (never a
traceback, never used as it is)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from laam.data.tokenizer import load_tokenizer
from laam.data.tokens import build_token_cache, untrue_records
from laam.errors import LaamError
from laam.io import SEAL_FILE, seal, seal_fault


def test_seal_names_what_changed(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"0123456789")
    (tmp_path / "b.json").write_text("{}")
    assert "never finished" in seal_fault(tmp_path)
    seal(tmp_path, ["a.bin", "b.json"])
    assert seal_fault(tmp_path) is None
    (tmp_path / "a.bin").write_bytes(b"0123456780")  # same size, one byte changed
    assert "a.bin no longer has the SHA-256" in seal_fault(tmp_path)
    (tmp_path / "a.bin").write_bytes(b"01234")
    assert "a.bin has 5 bytes where 10 were written" in seal_fault(tmp_path)
    (tmp_path / "a.bin").unlink()
    assert "a.bin is missing" in seal_fault(tmp_path)
    for garbled in ("", "[1, 2]", '{"a.bin": 3}', '{"../x": {"size": 1, "sha256": "0"}}'):
        (tmp_path / SEAL_FILE).write_text(garbled)
        assert seal_fault(tmp_path) is not None


@pytest.fixture
def fresh_cache(tiny_corpus, tiny_tokenizer_dir, tmp_path):
    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    return build_token_cache(tiny_corpus, tokenizer, tiny_tokenizer_dir, tmp_path), tokenizer


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])


def _edit_index(path: Path) -> None:
    index = json.loads(path.read_text())
    index["lengths"][0] += 1000
    path.write_text(json.dumps(index))


@pytest.mark.parametrize("damage", [
    lambda folder: _cut(folder / "ids.bin"),
    lambda folder: _edit_index(folder / "index.json"),
    lambda folder: (folder / SEAL_FILE).unlink(),  # an entry whose writer never finished
    lambda folder: (folder / "index.json").write_text("{"),
], ids=["truncated-ids", "edited-index", "unsealed", "garbled-index"])
def test_a_damaged_token_cache_is_rebuilt_with_one_line(fresh_cache, tiny_corpus, tiny_tokenizer_dir, tmp_path,
                                                       capsys, damage):
    cache, tokenizer = fresh_cache
    expected = np.array(cache.ids)
    damage(cache.folder)
    capsys.readouterr()
    again = build_token_cache(tiny_corpus, tokenizer, tiny_tokenizer_dir, tmp_path)
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if line.strip()]
    assert len(notes) == 1 and f"token cache {cache.folder} is damaged" in notes[0], err
    assert np.array_equal(np.array(again.ids), expected) and seal_fault(again.folder) is None
    assert untrue_records(again, tiny_corpus, tokenizer) == {}


def test_a_cache_that_does_not_fit_together_is_one_line(fresh_cache, tmp_path):
    """An entry that passes its seal but whose index and ids disagree (written wrong): a LaamError naming it."""
    from laam.data.tokens import FILES, load_token_cache

    cache, _ = fresh_cache
    _edit_index(cache.folder / "index.json")
    seal(cache.folder, FILES)
    with pytest.raises(LaamError, match=f"token cache {cache.folder} is unreadable"):
        load_token_cache(cache.folder)


def test_untrue_records_finds_changed_ids_and_their_position(fresh_cache, tiny_corpus):
    cache, tokenizer = fresh_cache
    i = 3
    at = int(cache.body_starts[i]) + 5
    ids = np.memmap(cache.folder / "ids.bin", dtype=cache.ids.dtype, mode="r+")
    ids[int(cache.offsets[i]) + at] = (int(ids[int(cache.offsets[i]) + at]) + 1) % 300 + 5
    ids.flush()
    assert untrue_records(cache, tiny_corpus, tokenizer) == {cache.paths[i]: at}


def test_a_cut_cached_tokenizer_is_trained_again(tiny_corpus, tmp_path, capsys):
    from laam.pipeline import ensure_tokenizer

    corpus = dataclasses.replace(tiny_corpus, config=dataclasses.replace(tiny_corpus.config, cache=tmp_path))
    folder = ensure_tokenizer(corpus, 300)
    good = (folder / "tokenizer.json").read_bytes()
    assert seal_fault(folder) is None
    _cut(folder / "tokenizer.json")
    capsys.readouterr()
    assert ensure_tokenizer(corpus, 300) == folder
    err = capsys.readouterr().err
    assert f"cached tokenizer {folder} is damaged (tokenizer.json has" in err
    assert (folder / "tokenizer.json").read_bytes() == good and seal_fault(folder) is None
    load_tokenizer(folder)


def test_a_damaged_trace_index_is_rebuilt(tiny_corpus, tmp_path, capsys):
    from laam.proof.trace import load_or_build_index

    corpus = dataclasses.replace(tiny_corpus, config=dataclasses.replace(tiny_corpus.config, cache=tmp_path))
    index, built = load_or_build_index(corpus)
    assert built
    folder = next((tmp_path / "corpus").glob("*/trace-*"))
    data = bytearray((folder / "corpus.bin").read_bytes())
    data[100] ^= 1
    (folder / "corpus.bin").write_bytes(bytes(data))
    capsys.readouterr()
    again, built = load_or_build_index(corpus)
    assert built and f"trace index {folder} is damaged (corpus.bin" in capsys.readouterr().err
    assert again.data == index.data


def test_a_cached_archive_without_its_record_is_fetched_again(mirror, tmp_path, capsys):
    from laam.data.fetch import fetch_release

    first = fetch_release("1.0", str(mirror), tmp_path, progress=False)
    record = first.path.with_name(first.path.name + ".json")
    record.unlink()
    capsys.readouterr()
    again = fetch_release("1.0", str(mirror), tmp_path, progress=False)
    assert f"{first.path} has no record of the SHA-256 it was fetched with" in capsys.readouterr().err
    assert again.sha256 == first.sha256 and again.verified_against and record.is_file()
