"""Read a release safely: every member of a tarball or an unpacked folder, in memory, never extracted.

Links, devices and paths that would escape the tree (absolute, `..`) carry no data; the corpus
reports them as skipped. A member larger than the size limit is skipped from its header, before
any of it is read.

A tarball is read in one streaming pass and verified end to end on the way: every compressed stream
is read to its end (so gzip's CRC-32, xz's check and bzip2's CRCs are all checked) and the tar must
end with its end-of-archive marker (two zero blocks). tarfile alone stops silently at a damaged
header or at a cut between members and never reaches the compressor's checksum, which would give a
plausible but partial corpus; here any such archive is a `CorruptArchive` error, raised before the
last member is handed on, so nothing is written from it.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from laam.errors import LaamError

ARCHIVE_NAME_SUFFIXES = (".tar.xz", ".tar.gz", ".tar.bz2", ".tgz", ".tar")
END_OF_ARCHIVE = 2 * tarfile.BLOCKSIZE  # two zero blocks close a tar
_CHUNK = 1 << 20
# What a damaged or cut archive raises from the decompressors and tarfile (gzip.BadGzipFile, bz2's and
# lzma's errors are OSError or their own classes; a cut stream is EOFError).
_DAMAGE = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError, UnicodeError)


class CorruptArchive(LaamError):
    """An archive that is not a complete, intact tar (or compressed tar): never used, never cached."""

    def __init__(self, path: Path, detail: str):
        self.path, self.detail = Path(path), " ".join(str(detail).split()) or "unreadable"
        super().__init__(f"archive {path} is corrupt or truncated: {self.detail}")


@dataclass
class Member:
    """One archive member, as read without ever extracting it to disk."""

    path: str
    kind: str  # file, dir, symlink, hardlink, device, fifo, other
    data: bytes | None = None  # None for a file over the size limit, or anything that is not a file
    size: int | None = None  # a file's size, from its header


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


def _decompressor(raw: BinaryIO) -> BinaryIO:
    """The decompressed stream of a file, chosen by its magic bytes (plain tar when none matches)."""
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw, mode="rb")
    return raw


@contextmanager
def open_decompressed(path: Path) -> Iterator[BinaryIO]:
    """The uncompressed bytes of a `.tar`, `.tar.gz`, `.tar.xz` or `.tar.bz2`, as a stream (never all in memory)."""
    path = Path(path)
    try:
        raw = open(path, "rb")
    except OSError as error:
        raise LaamError(f"cannot read archive {path}: {error.strerror or error}") from error
    with raw, _decompressor(raw) as stream:
        yield stream


class _ForwardReader:
    """A forward-only view of a stream for tarfile: seeking ahead reads and drops (the decompressed stream
    cannot go back, and need not), and the last block read is kept for the end-of-archive check."""

    def __init__(self, stream: BinaryIO):
        self.stream, self.position = stream, 0
        self.last_start, self.last = 0, b""

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.last_start, self.last = self.position, data
        self.position += len(data)
        return data

    def tell(self) -> int:
        return self.position

    def seek(self, position: int, whence: int = os.SEEK_SET) -> int:
        target = position if whence == os.SEEK_SET else self.position + position
        if target < self.position:
            raise tarfile.ReadError(f"cannot seek back to byte {target} of a compressed stream")
        while self.position < target:
            if not self.read(min(_CHUNK, target - self.position)):
                break  # past the end: the next read says "unexpected end of data"
        return self.position

    def drain_is_zero(self) -> tuple[int, bool]:
        """Read to the end: (bytes read, whether all of them were zero). Reading to the end checks the
        compressor's trailer."""
        count, zero = 0, True
        while chunk := self.read(_CHUNK):
            count += len(chunk)
            zero = zero and not chunk.strip(b"\0")
        return count, zero


def _check_end(reader: _ForwardReader, end: int) -> None:
    """After tarfile stopped at `end`: the rest of the stream is the end-of-archive marker and zero padding."""
    consumed = reader.last[end - reader.last_start:] if reader.last_start <= end < reader.position else b""
    rest, rest_zero = reader.drain_is_zero()
    if consumed.strip(b"\0") or not rest_zero:
        raise tarfile.ReadError(f"a damaged member header at byte {end} of the tar")
    if len(consumed) + rest < END_OF_ARCHIVE:
        raise tarfile.ReadError(f"the tar ends at byte {end} without its end-of-archive marker (cut short)")


def read_tar(path: Path, max_file_size: int | None = None, read_data: bool = True) -> Iterator[Member]:
    """Every member of a tarball, contents read in memory; links, devices and unsafe paths carry no data.

    max_file_size: a larger file is yielded without data (its size from the header), never read into memory.
    read_data=False: only check the archive (every member is skipped, the whole stream still decompressed).
    Raises CorruptArchive (one line, with the path) for any damage, including a tar cut at a member boundary.
    """
    path = Path(path)
    with open_decompressed(path) as stream:
        reader = _ForwardReader(stream)
        try:
            tar = tarfile.open(fileobj=reader, mode="r:", encoding="utf-8", errors="surrogateescape")
            while (info := tar.next()) is not None:
                kind = _tar_kind(info)
                name = info.name.removeprefix("./")
                too_large = max_file_size is not None and info.size > max_file_size
                if kind == "file" and read_data and not too_large and not unsafe_path(name):
                    handle = tar.extractfile(info)
                    yield Member(name, kind, handle.read(), info.size)
                else:
                    yield Member(name, kind, None, info.size if kind == "file" else None)
                tar.members.clear()  # tarfile keeps every header it read; a modern tree has ~90k
            _check_end(reader, tar.offset)
        except CorruptArchive:
            raise
        except _DAMAGE as error:
            raise CorruptArchive(path, str(error) or type(error).__name__) from error


def verify_archive(path: Path) -> int:
    """Read a whole archive once without keeping anything: its member count, or CorruptArchive."""
    return sum(1 for _ in read_tar(path, read_data=False))


def read_folder(root: Path, max_file_size: int | None = None) -> Iterator[Member]:
    """An unpacked tree; paths are prefixed with the folder's name, as a release tarball names them."""
    root = Path(root).resolve()
    for directory, dirs, names in os.walk(root):  # never follows symlinked folders
        dirs.sort()
        for name in sorted(names + [d for d in dirs if os.path.islink(os.path.join(directory, d))]):
            full = Path(directory, name)
            path = f"{root.name}/{full.relative_to(root).as_posix()}"
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                yield Member(path, "symlink")
            elif stat.S_ISREG(info.st_mode):
                too_large = max_file_size is not None and info.st_size > max_file_size
                yield Member(path, "file", None if too_large else full.read_bytes(), info.st_size)
            else:
                kind = "device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "other"
                yield Member(path, kind)


def archive_stem(name: str) -> str:
    """`linux-1.0.tar.xz` -> `linux-1.0`."""
    for suffix in ARCHIVE_NAME_SUFFIXES:
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name
