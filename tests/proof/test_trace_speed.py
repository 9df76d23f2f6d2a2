"""`laam trace` parses a text without searching every position, and finds exactly the spans that
searching every position finds; it reports its progress."""

from __future__ import annotations

import random

import pytest

from laam.proof.trace import TraceIndex


@pytest.fixture(scope="module")
def linux_index(linux_corpus):
    return TraceIndex.build(linux_corpus)


def _texts(corpus, size: int, seed: int) -> dict[str, bytes]:
    """Texts that exercise the parse: kernel files between unrelated text, kernel lines in another order (many
    matches just short of a span), files back to back, files with a byte changed here and there, and one with
    a NUL byte (searched at every position)."""
    rng = random.Random(seed)
    files = [f.data for f in corpus.files if 200 < len(f.data) < 20000]
    junk = bytes(rng.choice(b"qwxzjkv QWXZJKV\n;{}()") for _ in range(size))
    mixed, at = [], 0
    while at < size:
        piece = rng.choice(files) if rng.random() < 0.3 else junk[at:at + rng.randrange(100, 3000)]
        mixed.append(piece)
        at += len(piece)
    lines = [line for f in files[:200] for line in f.splitlines(keepends=True)]
    rng.shuffle(lines)
    edited = bytearray(b"".join(rng.sample(files, 10))[:size])
    for i in rng.sample(range(len(edited)), 40):
        edited[i] = ord("#")
    return {"mixed": b"".join(mixed)[:size], "shuffled-lines": b"".join(lines)[:size],
            "files": b"".join(rng.sample(files, 20))[:size], "edited": bytes(edited),
            "nul": b"".join(mixed)[:size // 4] + b"\0" + b"".join(lines)[:size // 4]}


@pytest.mark.parametrize("min_length", [80, 33, 8, 1])
def test_the_fast_parse_finds_what_searching_every_position_finds(linux_index, linux_corpus, min_length):
    for name, text in _texts(linux_corpus, 30_000, seed=min_length).items():
        fast = linux_index.trace(text, min_length)
        assert fast == linux_index.trace(text, min_length, exhaustive=True), (name, min_length)
        assert fast or name == "nul" and min_length > 8, name


def test_unrelated_text_costs_a_search_or_two_per_min_length_bytes(linux_index, linux_corpus, monkeypatch):
    text = _texts(linux_corpus, 400_000, seed=1)["mixed"]
    searches = []
    original = TraceIndex.longest_match

    def counted(self, *args, **kwargs):
        searches.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(TraceIndex, "longest_match", counted)
    spans = linux_index.trace(text, 80)
    copied = sum(s.length for s in spans)
    assert 0 < copied < len(text)
    assert len(searches) < (len(text) - copied) / 20  # searching every position: one per byte not in a span


def test_progress_is_reported_up_to_the_end(linux_index, linux_corpus):
    text = _texts(linux_corpus, 300_000, seed=2)["shuffled-lines"]
    seen = []
    linux_index.trace(text, 80, on_progress=seen.append)
    assert len(seen) >= 3 and seen == sorted(seen) and seen[-1] == len(text)
