"""Shared fixtures: a small kernel release the tests build (tests/kernel_tree.py) and its tiny memorized model,
and the real Linux 1.0 for the tests that are about Linux 1.0 itself.

The real release is found through one fixture, `linux_mirror` (LAAM_TEST_MIRROR, default
../shared/data/kernel-mirror beside the repository). Without it those tests fail under CI=true, so a CI run never
passes by skipping, and skip elsewhere with the count and the reason in pytest's summary."""

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
from tests import kernel_tree

REPO = Path(__file__).resolve().parents[1]
LINUX_MIRROR = Path(os.environ.get("LAAM_TEST_MIRROR") or REPO.parent / "shared" / "data" / "kernel-mirror")
LINUX_TARBALL = LINUX_MIRROR / "v1.0" / "linux-1.0.tar.xz"
NO_LINUX = "needs the real Linux 1.0"  # the start of every such skip's reason, counted in the summary
# lib/ of the synthetic release without malloc.c: 12 small files (≈3.5 KB), memorized in seconds, ctype.c longer
# than the tiny model's context, so sliding windows are exercised.
TINY_INCLUDE = ("lib/",)
TINY_EXCLUDE = ("lib/malloc.c",)


@pytest.fixture(scope="session")
def release() -> kernel_tree.Release:
    """The synthetic release, written as a mirror (v1.0/linux-1.0.tar.xz, .tar.gz, sha256sums.txt). It lives in
    the test cache beside the models trained on it, whose laam.json names its path, so both last as long."""
    key = hashlib.sha256(Path(kernel_tree.__file__).read_bytes()).hexdigest()[:12]
    return kernel_tree.release_at(_built_once("kernel-mirror", kernel_tree.write_mirror, key))


@pytest.fixture(scope="session")
def mirror(release) -> Path:
    """A local mirror laid out like kernel.org's pub/linux/kernel/, holding the synthetic 1.0."""
    return release.mirror


@pytest.fixture(scope="session")
def tarball(release) -> Path:
    """The synthetic release's .tar.xz."""
    return release.tarball


@pytest.fixture(scope="session")
def linux_mirror() -> Path:
    """The real Linux 1.0 mirror (LAAM_TEST_MIRROR); a failure under CI=true when it is missing, else a skip."""
    if not LINUX_TARBALL.is_file():
        reason = f"{NO_LINUX}: no {LINUX_TARBALL} (set LAAM_TEST_MIRROR to a mirror holding v1.0/linux-1.0.tar.xz)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true and this test {reason}", pytrace=False)
        pytest.skip(reason)
    return LINUX_MIRROR


@pytest.fixture(scope="session")
def linux_tarball(linux_mirror) -> Path:
    return linux_mirror / "v1.0" / "linux-1.0.tar.xz"


def pytest_terminal_summary(terminalreporter):
    """Say how many tests did not run for want of the real Linux 1.0, and how to run them: a suite that skips
    most of itself must not read as green."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if NO_LINUX in str(r.longrepr)]
    if skipped:
        counted = f"{len(skipped)} tests skipped: they need" if len(skipped) != 1 else "1 test skipped: it needs"
        terminalreporter.write_sep("!", f"{counted} the real Linux 1.0 and found no {LINUX_TARBALL} (set "
                                   "LAAM_TEST_MIRROR; under CI=true this fails)", red=True, bold=True)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("laam-cache")


@pytest.fixture(scope="session")
def linux_corpus(linux_tarball):
    """All of Linux 1.0 under the default filter."""
    return load_corpus(CorpusConfig(source=str(linux_tarball)), progress=False)


@pytest.fixture(scope="session")
def tiny_corpus(tarball):
    return load_corpus(CorpusConfig(source=str(tarball), include=TINY_INCLUDE, exclude=TINY_EXCLUDE), progress=False)


def source_key() -> str:
    """A hash of everything a cached test model depends on: every file under laam/, the tests' model and fixture
    code, and the synthetic tree's bytes."""
    digest = hashlib.sha256()
    package = [p for p in (REPO / "laam").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    sources = sorted(package) + [REPO / "tests" / name for name in ("tiny_model.py", "conftest.py", "kernel_tree.py")]
    for path in sources:
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    digest.update(kernel_tree.fingerprint().encode())
    return digest.hexdigest()[:12]


def _built_once(name: str, build, key: str | None = None) -> Path:
    """A folder built by `build(folder)` once per version of the code that builds it, reused across test runs
    (the tiny model takes ≈15 s to train). Keyed by `key`, by default `source_key()`; built into a temporary folder
    and renamed, so an interrupted build is never reused."""
    folder = Path(os.environ.get("LAAM_TEST_CACHE", Path(tempfile.gettempdir()) / "laam-test-cache")) / \
        f"{name}-{key or source_key()}"
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
