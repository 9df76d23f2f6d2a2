"""Faults in using a model as a compressor: an archive changed with its CRC recomputed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from tests.faults import cli, files_under, one_error


@pytest.fixture(scope="module")
def changed_archive(tiny_model_dir, tiny_corpus, tmp_path_factory) -> tuple[Path, str, bytes]:
    """(a well-formed archive whose coded stream was changed and its CRC-32 recomputed, so that it decodes to a
    file of the right size but other bytes; that file's path; its true bytes).

    The changed stream is the coding of the file with one byte replaced, under the true file's SHA-256: what a
    flipped bit does to an archive, without depending on which bit of which word a given model's coding makes
    decode to a same-size file."""
    from dataclasses import replace

    from laam.model.folder import load_model
    from laam.proof.compress.coder import compress_files
    from laam.proof.compress.container import write_container

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loaded = load_model(tiny_model_dir)
        (file,) = [f for f in tiny_corpus.files if f.path == "linux/lib/open.c"]
        at = file.data.index(b"return")
        other = replace(file, data=file.data[:at] + b"R" + file.data[at + 1:])
        container, _ = compress_files(loaded, [other], batch_size=1)
    finally:
        torch.set_num_threads(previous)
    container.files[0].sha256 = hashlib.sha256(file.data).hexdigest()  # the archive claims the true file
    archive = tmp_path_factory.mktemp("changed") / "changed.laamz"
    write_container(container, archive)  # a valid CRC-32 over the changed bytes
    return archive, file.path, file.data


def test_decompress_verifies_by_default(capsys, tiny_model_dir, changed_archive, tmp_path):
    """`laam decompress` verifies by default: a file that does not decode to its recorded SHA-256 is reported and
    not written (exit 2)."""
    archive, path, true_bytes = changed_archive
    ran = cli(capsys, "decompress", "--model", tiny_model_dir, archive, "--out", tmp_path / "out", "--quiet")
    one_error(ran, "1 files did not decode exactly and were not written", path, "SHA-256 differs")
    assert files_under(tmp_path / "out") == {}
    unchecked = cli(capsys, "decompress", "--model", tiny_model_dir, archive, "--out", tmp_path / "raw", "--quiet",
                    "--no-verify")  # asked for: sizes only
    assert unchecked.code == 0 and (tmp_path / "raw" / path).read_bytes() != true_bytes
