"""Faults in using a model as a compressor (issue 13): an archive changed with its CRC recomputed."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.faults import cli, files_under, one_error


@pytest.fixture(scope="module")
def changed_archive(tiny_model_dir, tiny_corpus, tmp_path_factory) -> tuple[Path, str, bytes]:
    """(a well-formed archive whose coded stream was changed and its CRC-32 recomputed, so that it decodes to a
    file of the right size but other bytes; that file's path; its true bytes)."""
    from laam.model.folder import load_model
    from laam.proof.compress.coder import compress_files, decompress_container
    from laam.proof.compress.container import read_container, write_container

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        loaded = load_model(tiny_model_dir)
        (file,) = [f for f in tiny_corpus.files if f.path == "linux/lib/open.c"]
        container, _ = compress_files(loaded, [file], batch_size=1)  # memorized: one 32-bit word
        folder = tmp_path_factory.mktemp("changed")
        for word in range(len(container.streams[0])):
            for bit in [21, *(b for b in range(32) if b != 21)]:  # bit 21 does it for the fixture's tiny model
                stream = container.streams[0].copy()
                stream[word] ^= 1 << bit
                changed = read_container_with(container, stream, folder / "changed.laamz", read_container,
                                              write_container)
                (decoded,) = decompress_container(loaded, changed, verify=False)
                if decoded.ok and decoded.data != file.data:
                    return folder / "changed.laamz", file.path, file.data
    finally:
        torch.set_num_threads(previous)
    pytest.fail("no single-bit change gave a same-size wrong file")


def read_container_with(container, stream, path, read_container, write_container):
    original = container.streams[0]
    container.streams[0] = stream
    try:
        write_container(container, path)  # a valid CRC-32 over the changed bytes
    finally:
        container.streams[0] = original
    return read_container(path)


def test_decompress_verifies_by_default(capsys, tiny_model_dir, changed_archive, tmp_path):
    """Before: exit 0 and a wrong file, since --verify was off by default."""
    archive, path, true_bytes = changed_archive
    ran = cli(capsys, "decompress", "--model", tiny_model_dir, archive, "--out", tmp_path / "out", "--quiet")
    one_error(ran, "1 files did not decode exactly and were not written", path, "SHA-256 differs")
    assert files_under(tmp_path / "out") == {}
    unchecked = cli(capsys, "decompress", "--model", tiny_model_dir, archive, "--out", tmp_path / "raw", "--quiet",
                    "--no-verify")  # asked for: sizes only
    assert unchecked.code == 0 and (tmp_path / "raw" / path).read_bytes() != true_bytes
