"""Trace: planted corpus spans are found at the right file and lines; text not in the corpus gives nothing."""

from __future__ import annotations

import random

import pytest

from laam.proof.trace import TraceIndex, index_folder, load_or_build_index


@pytest.fixture(scope="module")
def tiny_index(tiny_corpus):
    return TraceIndex.build(tiny_corpus)


def junk(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.choice(b"qwxzjkv QWXZJKV\n") for _ in range(n))


def test_planted_span_found_at_file_and_lines(tiny_index, tiny_corpus):
    source = next(f for f in tiny_corpus.files if f.path == "linux/lib/ctype.c")
    lines = source.data.splitlines(keepends=True)
    planted = b"".join(lines[4:20])  # lines 5..20 of ctype.c
    prefix = b"my own line one\nmy own line two\n"
    spans = tiny_index.trace(prefix + planted + junk(300, 1), min_length=40)
    assert len(spans) == 1
    span = spans[0]
    assert span.path == "linux/lib/ctype.c" and span.license == source.license
    assert span.start <= len(prefix) + 1 and span.length >= len(planted) - 2
    assert span.lines[0] == 3 and span.lines[1] in (18, 19)
    assert span.source_lines[0] in (4, 5) and span.source_lines[1] == 20
    assert span.files == 1
    assert "of this text copy linux/lib/ctype.c lines" in span.describe()


def test_text_not_in_corpus_gives_nothing(tiny_index):
    assert tiny_index.trace(junk(5000, 2), min_length=20) == []


def test_span_in_many_files_is_counted(tiny_index, tiny_corpus):
    # the shared syscall-stub header of linux/lib/*.c occurs in several files
    common = b"#define __LIBRARY__\n#include <linux/unistd.h>\n"
    holders = [f.path for f in tiny_corpus.files if common in f.data]
    assert len(holders) >= 3
    spans = tiny_index.trace(b"\n" + common, min_length=len(common) - 1)
    assert spans and spans[0].files == len(holders) and spans[0].path == holders[0]


def test_whole_file_and_min_length(tiny_index, tiny_corpus):
    f = tiny_corpus.files[3]
    spans = tiny_index.trace(f.data, min_length=10)
    assert [(s.start, s.length, s.path) for s in spans] == [(0, len(f.data), f.path)]
    assert tiny_index.trace(f.data, min_length=len(f.data) + 1) == []


def test_index_is_cached_by_fingerprint(tiny_corpus, tmp_path):
    from dataclasses import replace

    from laam.data.corpus import Corpus

    corpus = Corpus(**{**tiny_corpus.__dict__, "config": replace(tiny_corpus.config, cache=tmp_path)})
    first, built = load_or_build_index(corpus)
    again, built_again = load_or_build_index(corpus)
    assert built and not built_again
    assert index_folder(corpus).name.endswith(corpus.fingerprint())
    query = tiny_corpus.files[0].data
    assert [s.length for s in again.trace(query, 20)] == [s.length for s in first.trace(query, 20)]
