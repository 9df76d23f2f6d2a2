"""laam.io: atomic writes end with the permissions an ordinary write would give, and leave nothing on error."""

from __future__ import annotations

import os
import stat

import pytest

from laam.io import atomic_folder, atomic_write_text


@pytest.mark.parametrize(("umask", "file_mode", "folder_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_files_and_folders_get_the_umasks_permissions(tmp_path, umask, file_mode, folder_mode):
    old = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "laam.json", "{}")
        with atomic_folder(tmp_path / "model") as scratch:
            (scratch / "config.json").write_text("{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "laam.json").stat().st_mode) == file_mode
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == folder_mode
    assert (tmp_path / "model" / "config.json").read_text() == "{}"


def test_an_error_leaves_neither_file_nor_folder(tmp_path):
    from laam.io import atomic_file

    with pytest.raises(KeyboardInterrupt), atomic_file(tmp_path / "a.bin") as handle:
        handle.write(b"half")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt), atomic_folder(tmp_path / "model") as scratch:
        (scratch / "config.json").write_text("{}")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
