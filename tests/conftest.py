"""Shared fixtures: the real Linux 1.0 mirror from ../shared, its corpus, and a tiny memorized model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from laam.corpus import CorpusConfig, load_corpus

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MIRROR = SHARED / "data" / "kernel-mirror"
TARBALL = MIRROR / "v1.0" / "linux-1.0.tar.xz"
# 12 small files of linux/lib/ (≈4 KB): small enough to memorize in seconds, ctype.c longer than the
# tiny model's context, so sliding windows are exercised.
TINY_INCLUDE = ("linux/lib/",)
TINY_EXCLUDE = ("linux/lib/malloc.c",)


@pytest.fixture(scope="session")
def mirror() -> Path:
    if not TARBALL.is_file():
        pytest.skip(f"kernel mirror not found at {MIRROR}")
    return MIRROR


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("laam-cache")


@pytest.fixture(scope="session")
def linux_corpus(mirror):
    """All of Linux 1.0 under the default filter."""
    return load_corpus(CorpusConfig(source=str(TARBALL)), progress=False)


@pytest.fixture(scope="session")
def tiny_corpus(mirror):
    return load_corpus(CorpusConfig(source=str(TARBALL), include=TINY_INCLUDE, exclude=TINY_EXCLUDE), progress=False)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tiny_corpus, tmp_path_factory) -> Path:
    from laam.tokenizer import train_tokenizer

    out = tmp_path_factory.mktemp("tiny-tokenizer")
    train_tokenizer(tiny_corpus, out, vocab_size=512)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_corpus, tiny_tokenizer_dir, tmp_path_factory) -> Path:
    """A small Llama that has memorized tiny_corpus (100% greedy under laam.windows), saved as a model folder."""
    from tests.tiny_model import train_tiny_model

    out = tmp_path_factory.mktemp("tiny-model")
    train_tiny_model(tiny_corpus, tiny_tokenizer_dir, out)
    return out


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
