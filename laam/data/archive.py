"""Read a release safely: every member of a tarball or an unpacked folder, in memory, never extracted.

Links, devices and paths that would escape the tree (absolute, `..`) carry no data; the corpus
reports them as skipped.
"""

from __future__ import annotations

import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from laam.errors import LaamError

ARCHIVE_NAME_SUFFIXES = (".tar.xz", ".tar.gz", ".tar.bz2", ".tgz", ".tar")


@dataclass
class Member:
    """One archive member, as read without ever extracting it to disk."""

    path: str
    kind: str  # file, dir, symlink, hardlink, device, fifo, other
    data: bytes | None = None


def unsafe_path(path: str) -> bool:
    """True for a member path that would land outside the tree if extracted (absolute, `..`, a drive letter)."""
    parts = path.split("/")
    return path.startswith("/") or ".." in parts or (len(path) > 1 and path[1] == ":")


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isdev():
        return "device"
    return "other"


def read_tar(path: Path) -> Iterator[Member]:
    """Every member of a tarball, contents read in memory; links, devices and unsafe paths carry no data."""
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for info in tar:
                kind = _tar_kind(info)
                name = info.name.removeprefix("./")
                if kind == "file" and not unsafe_path(name):
                    handle = tar.extractfile(info)
                    yield Member(name, kind, handle.read())
                else:
                    yield Member(name, kind)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        # lzma.LZMAError and bz2's errors are OSError subclasses
        raise LaamError(f"archive {path} is corrupt or truncated: {error}") from error


def read_folder(root: Path) -> Iterator[Member]:
    """An unpacked tree; paths are prefixed with the folder's name, as a release tarball names them."""
    root = Path(root).resolve()
    for directory, dirs, names in os.walk(root):  # never follows symlinked folders
        dirs.sort()
        for name in sorted(names + [d for d in dirs if os.path.islink(os.path.join(directory, d))]):
            full = Path(directory, name)
            path = f"{root.name}/{full.relative_to(root).as_posix()}"
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                yield Member(path, "symlink")
            elif stat.S_ISREG(mode):
                yield Member(path, "file", full.read_bytes())
            else:
                yield Member(path, "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "other")


def archive_stem(name: str) -> str:
    """`linux-1.0.tar.xz` -> `linux-1.0`."""
    for suffix in ARCHIVE_NAME_SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name
