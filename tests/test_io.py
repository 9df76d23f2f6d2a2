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


def test_output_path_stays_inside_out(tmp_path):
    """Resolved as tarfile's `data` filter does: `..`, absolute names and symlinks leading outside are refused."""
    from laam.errors import LaamError
    from laam.io import output_path

    out = tmp_path / "out"
    (out / "linux").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    assert output_path(out, "linux/lib/ctype.c") == (out / "linux/lib/ctype.c").resolve()
    (out / "inside").symlink_to(out / "linux")  # a symlink that stays inside is fine
    assert output_path(out, "inside/a.c") == (out / "linux/a.c").resolve()
    (out / "away").symlink_to(tmp_path / "elsewhere")
    for name in ("../x.c", "/etc/passwd", "away/a.c", "linux/../../x.c", "."):
        with pytest.raises(LaamError, match="refusing to write"):
            output_path(out, name)


def test_refuse_replacing_keeps_other_bytes_unless_forced(tmp_path):
    from laam.errors import LaamError
    from laam.io import refuse_replacing, sha256_bytes

    mine = tmp_path / "a.c"
    mine.write_bytes(b"mine")
    refuse_replacing({mine: sha256_bytes(b"mine")}, force=False)  # the same bytes: no loss
    refuse_replacing({tmp_path / "new.c": sha256_bytes(b"x")}, force=False)  # nothing there yet
    with pytest.raises(LaamError, match="already exists with other content; pass --force"):
        refuse_replacing({mine: sha256_bytes(b"theirs")}, force=False)
    refuse_replacing({mine: sha256_bytes(b"theirs")}, force=True)
    assert mine.read_bytes() == b"mine"
