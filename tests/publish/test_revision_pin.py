"""The card's `trust_remote_code=True` example pins the revision holding the hashed custom_generate/generate.py when
the folder knows it (a git clone of its repository, those files unchanged), and says how to pin it otherwise."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from laam.io import sha256_file
from laam.model.binding import BOUND_FILES
from laam.model.folder import CUSTOM_GENERATE_FILE
from laam.provenance import folder_revision
from laam.publish.facts import gather_facts
from laam.publish.sections import transformers_usage, usage_examples


def _commit_all(folder: Path) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(folder), "-c", "user.name=t", "-c", "user.email=t@example.org",
                               *args], check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "the model")
    return git("rev-parse", "HEAD")


def test_the_revision_is_the_commit_holding_these_decoding_files(tiny_model_dir, tmp_path):
    folder = tmp_path / "clone"
    shutil.copytree(tiny_model_dir, folder)
    assert folder_revision(folder, BOUND_FILES) is None  # not a repository
    head = _commit_all(folder)
    assert folder_revision(folder, BOUND_FILES) == head
    (folder / "README.md").write_text("a card written since")  # not a decoding file: the revision still holds
    assert folder_revision(folder, BOUND_FILES) == head
    assert folder_revision(folder / "custom_generate", BOUND_FILES) is None  # inside a repository, not its top
    (folder / CUSTOM_GENERATE_FILE).write_text("# edited\n")
    assert folder_revision(folder, BOUND_FILES) is None


def _example(folder: Path, where: str) -> str:
    facts = gather_facts(folder)
    return transformers_usage(facts, where, *usage_examples(facts))


def test_the_card_pins_the_known_revision_or_says_how(tiny_model_dir, tmp_path):
    folder = tmp_path / "clone"
    shutil.copytree(tiny_model_dir, folder)
    digest = sha256_file(folder / CUSTOM_GENERATE_FILE)
    unpinned = _example(folder, "laam-test/tiny")
    assert 'trust_remote_code=True)' in unpinned and f"`{digest}`" in unpinned
    assert 'pass `revision="COMMIT"`, the commit at which you read' in unpinned
    head = _commit_all(folder)
    pinned = _example(folder, "laam-test/tiny")
    assert f'pipeline("text-generation", "laam-test/tiny", trust_remote_code=True, revision="{head}")' in pinned
    assert f"`revision` pins commit `{head}`" in pinned and f"`{digest}`" in pinned
    local = _example(folder, ".")  # the example runs from the folder itself: the pin is given for the Hub
    assert 'trust_remote_code=True)' in local and f'Loading from the Hub instead, pass `revision="{head}"`' in local
