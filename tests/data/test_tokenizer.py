"""The tokenizer: exact vocabulary, and decode(encode(record)) == record for every file of the synthetic release
and of Linux 1.0."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from laam.data.corpus import CorpusConfig, load_corpus
from laam.data.records import file_bytes, split_record
from laam.data.tokenizer import (
    MIN_VOCAB,
    build_bpe,
    decode_ids,
    encode_records,
    load_tokenizer,
    special_ids,
    train_tokenizer,
)
from laam.data.tokens import build_token_cache
from laam.errors import LaamError


@pytest.fixture(scope="module")
def linux_tokenizer(linux_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("tok32768")
    report = train_tokenizer(linux_corpus, out, vocab_size=32768)
    return out, report


def test_whole_linux_1_0_round_trips_byte_for_byte(linux_corpus, linux_tokenizer):
    out, report = linux_tokenizer
    tokenizer = AutoTokenizer.from_pretrained(out)
    records = list(linux_corpus.records())
    assert len(records) == 561
    ids = encode_records(tokenizer, records)
    assert sum(map(len, ids)) == report.record_tokens
    mismatched = []
    for f, record, record_ids in zip(linux_corpus.files, records, ids):
        text = decode_ids(tokenizer, record_ids)
        # The stock transformers decode must agree too: what users call must not change a byte.
        stock = tokenizer.decode(record_ids, skip_special_tokens=False)
        if text != record or stock != record or file_bytes(split_record(text)[1], f.encoding) != f.data:
            mismatched.append(f.path)
    assert mismatched == []


def test_exact_vocabulary_and_special_tokens(linux_tokenizer):
    out, report = linux_tokenizer
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert len(tokenizer) == 32768 == report.vocab_size == report.learned + report.reserved
    assert (tokenizer.bos_token, tokenizer.eos_token, tokenizer.pad_token) == (
        "<|start_file|>", "<|end_file|>", "<|pad|>")
    ids = special_ids(tokenizer)
    assert sorted(ids.values()) == [0, 1, 2, 3, 4]
    assert 2.5 < report.bytes_per_token < 4
    info = json.loads((out / "laam_tokenizer.json").read_text())
    assert info["vocab_size"] == 32768 and info["corpus"] == "linux-1.0"


def test_prompts_as_the_stock_pipeline_tokenizes_them(linux_tokenizer):
    tokenizer = AutoTokenizer.from_pretrained(linux_tokenizer[0])
    ids = special_ids(tokenizer)
    # An empty prompt means "start a file"; a path prompt continues that file's header.
    assert tokenizer("").input_ids == [ids["<|start_file|>"], ids["<|start_header|>"]]
    path_ids = tokenizer("linux/kernel/sched.c").input_ids
    assert path_ids[:2] == [ids["<|start_file|>"], ids["<|start_header|>"]]
    assert tokenizer.decode(path_ids[2:]) == "linux/kernel/sched.c"
    assert not tokenizer("x y").input_ids[2:] == tokenizer(" x y").input_ids[2:]  # no prefix space added


def test_synthetic_release_round_trips_byte_for_byte(release, tmp_path):
    """Every file of the synthetic release, the Latin-1 one included, comes back from its ids byte for byte,
    through laam's decode and the stock transformers decode alike."""
    corpus = load_corpus(CorpusConfig(source=str(release.tarball)), progress=False)
    train_tokenizer(corpus, tmp_path, vocab_size=1024)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    records = list(corpus.records())
    assert len(records) == len(release.files)
    for f, record, ids in zip(corpus.files, records, encode_records(tokenizer, records)):
        assert decode_ids(tokenizer, ids) == record == tokenizer.decode(ids, skip_special_tokens=False)
        assert file_bytes(split_record(record)[1], f.encoding) == release.files[f.path]


def test_small_corpus_is_padded_with_reserved_tokens(tiny_corpus, tmp_path):
    report = train_tokenizer(tiny_corpus, tmp_path, vocab_size=4096)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    assert len(tokenizer) == 4096 and report.reserved > 0
    assert tokenizer.convert_ids_to_tokens(4095) == f"<|reserved_{report.reserved - 1}|>"


def test_vocabulary_smaller_than_bytes_plus_specials_is_an_error():
    with pytest.raises(LaamError, match=f"smaller than the byte alphabet plus special tokens .*= {MIN_VOCAB}"):
        build_bpe(["int x;"], MIN_VOCAB - 1)


@pytest.mark.slow  # tens of seconds; the fast tier keeps the default filter's whole-corpus round trip
def test_original_filter_round_trips_too(linux_tarball, tmp_path):
    corpus = load_corpus(CorpusConfig(source=str(linux_tarball), filter="original"), progress=False)
    train_tokenizer(corpus, tmp_path, vocab_size=8192)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path)
    records = list(corpus.records())
    assert [decode_ids(tokenizer, ids) for ids in encode_records(tokenizer, records)] == records


def test_batched_encoding_and_token_cache_equal_one_encode_batch(linux_corpus, linux_tokenizer, tmp_path,
                                                                 monkeypatch):
    """Bounded batches (here 7 files or 40,000 characters, so the 561 records split at many places) give exactly
    the ids of one encode_batch over every record, and the token cache written batch by batch holds them."""
    import laam.data.tokenizer as tokenizer_module
    from laam.data.tokenizer import backend, iter_token_ids, load_tokenizer
    from laam.data.tokens import build_token_cache

    out, report = linux_tokenizer
    tokenizer = load_tokenizer(out)
    whole = [e.ids for e in backend(tokenizer).encode_batch(list(linux_corpus.records()), add_special_tokens=False)]
    monkeypatch.setattr(tokenizer_module, "BATCH_FILES", 7)
    monkeypatch.setattr(tokenizer_module, "BATCH_CHARS", 40_000)
    batches = list(tokenizer_module._batches(linux_corpus.records()))
    assert len(batches) > 561 // 7 and max(len(b) for b in batches) == 7
    assert all(sum(map(len, b)) <= 40_000 for b in batches if len(b) > 1)  # a larger file goes alone
    assert list(iter_token_ids(tokenizer, linux_corpus.records())) == whole
    cache = build_token_cache(linux_corpus, tokenizer, out, tmp_path)
    assert cache.total_tokens == sum(map(len, whole)) == report.record_tokens
    assert [cache.record(i).tolist() for i in (0, 280, 560)] == [whole[0], whole[280], whole[560]]
    assert cache.ids.tolist() == [t for ids in whole for t in ids]


# the edit of tokenizer_config.json that breaks stock decoding: " ." becomes "." (and " ,", " ?", " n't"...);
# newer transformers ignore the first flag for BPE unless the second is set too
CLEAN_UP = {"clean_up_tokenization_spaces": True,
            "clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output": True}


def _clean_up_spaces(folder: Path) -> None:
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, **CLEAN_UP}))


def _cleaned_up(corpus) -> list[str]:
    """The paths of the records stock decoding changes once the clean-up flag is on (transformers' own rule)."""
    from transformers import PreTrainedTokenizerBase

    clean = PreTrainedTokenizerBase(clean_up_tokenization_spaces=True).clean_up_tokenization
    return [f.path for f, record in zip(corpus.files, corpus.records()) if clean(record) != record]


def test_a_tokenizer_that_fails_the_round_trip_is_not_saved(tiny_corpus, tmp_path, monkeypatch):
    import laam.data.tokenizer as tokenizer_module

    wrap = tokenizer_module.wrap

    def cleaning(tokenizer):
        wrapped = wrap(tokenizer)
        for name, value in CLEAN_UP.items():
            setattr(wrapped, name, value)
        return wrapped

    monkeypatch.setattr(tokenizer_module, "wrap", cleaning)
    changed = _cleaned_up(tiny_corpus)
    assert changed  # the corpus has records the flag changes, so the check has something to find
    with pytest.raises(LaamError, match=rf"not saved\) does not round-trip {len(changed)} of 12 records \(first: "
                                        rf"{re.escape(changed[0])}"):
        train_tokenizer(tiny_corpus, tmp_path / "tok", vocab_size=512)
    assert not (tmp_path / "tok").exists() and list(tmp_path.iterdir()) == []


def test_the_token_cache_checks_the_round_trip_of_any_tokenizer_dir(tiny_corpus, tiny_tokenizer_dir, tmp_path):
    """`laam train --tokenizer DIR` and `laam run` meet a tokenizer through the token cache: a folder whose stock
    decode does not give the records back is refused there, and leaves no cache."""
    folder = tmp_path / "tokenizer"
    shutil.copytree(tiny_tokenizer_dir, folder)
    cache = build_token_cache(tiny_corpus, load_tokenizer(folder), folder, tmp_path / "cache")
    assert cache.paths == [f.path for f in tiny_corpus.files]
    _clean_up_spaces(folder)
    changed = _cleaned_up(tiny_corpus)
    with pytest.raises(LaamError, match=rf"tokenizer in .* does not round-trip {len(changed)} of 12 records"):
        build_token_cache(tiny_corpus, load_tokenizer(folder), folder, tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache" / "tokens").iterdir()] == [cache.folder.name]
