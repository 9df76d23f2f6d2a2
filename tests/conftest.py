"""Shared fixtures: the real Linux 1.0 mirror from ../shared, its corpus, and a tiny memorized model."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# The fast suite runs in two worker processes (pytest-xdist, `-n 2` in pyproject's addopts). Each keeps to one
# CPU thread, and so do the subprocesses its tests start: two processes of two threads each on a 2-core machine
# collapse (cpu-training-facts.md), one thread each nearly halves the suite's time.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

from laam.data.corpus import CorpusConfig, load_corpus

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
MIRROR = SHARED / "data" / "kernel-mirror"
TARBALL = MIRROR / "v1.0" / "linux-1.0.tar.xz"
# 12 small files of lib/ (≈4 KB): small enough to memorize in seconds, ctype.c longer than the
# tiny model's context, so sliding windows are exercised.
TINY_INCLUDE = ("lib/",)
TINY_EXCLUDE = ("lib/malloc.c",)


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


def _built_once(name: str, build) -> Path:
    """A folder built by `build(folder)` once per version of the code that builds it, reused across test runs
    (the tiny model takes ≈15 s to train). Keyed by the sources involved; built into a temporary folder and
    renamed, so an interrupted build is never reused."""
    sources = ["tests/tiny_model.py", "tests/conftest.py", "laam/data/tokenizer.py", "laam/windows.py",
               "laam/data/corpus.py", "laam/data/records.py", "laam/train/batches.py", "laam/model/info.py",
               "laam/model/folder.py", "laam/model/custom_generate/generate.py"]
    root = Path(__file__).resolve().parents[1]
    key = hashlib.sha256(b"".join((root / s).read_bytes() for s in sources)).hexdigest()[:12]
    folder = Path(os.environ.get("LAAM_TEST_CACHE", Path(tempfile.gettempdir()) / "laam-test-cache")) / f"{name}-{key}"
    if not folder.is_dir():
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{name}-"))
        build(scratch)
        try:
            scratch.rename(folder)
        except OSError:  # another test process won the race
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tiny_corpus) -> Path:
    from laam.data.tokenizer import train_tokenizer

    return _built_once("tiny-tokenizer", lambda out: train_tokenizer(tiny_corpus, out, vocab_size=512))


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_corpus, tiny_tokenizer_dir) -> Path:
    """A small Llama (context 128, stride 64) that has memorized tiny_corpus: 100% greedy body accuracy under
    laam.windows. A model folder as `laam train` writes it (model.folder.save_model_folder): save_pretrained
    weights, tokenizer, generation config, laam.json, custom_generate/generate.py."""
    from tests.tiny_model import train_tiny_model

    return _built_once("tiny-model", lambda out: train_tiny_model(tiny_corpus, tiny_tokenizer_dir, out))


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `laam train`/`laam run` re-execute themselves once with faster allocator settings; inside pytest's process
# that would restart the test run, so the tests keep them off
os.environ["LAAM_REEXEC"] = "0"
