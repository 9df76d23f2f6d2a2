"""Writing files so that a crash never leaves half of one, never outside the folder asked for, never over a
user's file unasked; and hashing them.

Every file or folder another run may read (a cache entry, a checkpoint, a model folder, a report)
is written beside its final place and renamed into it: readers see the old version or the new
one, never a mix. The temporary file or folder is locked (flock) while it is written, so the next write of the
same target removes what a killed run left (nothing else holds the lock of a dead process's file), and it
gets the permissions the umask gives a new file, like every other file of its folder.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from laam.errors import LaamError

SEAL_FILE = "checksums.json"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _umask() -> int:
    """The process's umask, read without changing it where Linux tells it (os.umask can only set it, which would
    race with another thread creating a file)."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1], 8) for line in status if line.startswith("Umask:"))
    except (OSError, StopIteration):
        mask = os.umask(0o22)
        os.umask(mask)
        return mask


def lock_exclusive(handle, wait: bool) -> bool:
    """flock an open file or folder (a file object or a descriptor; released by the kernel when the process
    dies, however it dies); False if another holds it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no locks; a cleaner then treats every temporary file as in use
        return wait
    try:
        fcntl.flock(handle if isinstance(handle, int) else handle.fileno(),
                    fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    return True


def clean_leftovers(folder: Path, pattern: str, what: str = "left by an interrupted run") -> list[Path]:
    """Remove the files or folders matching `pattern` in `folder` that no running process holds locked: the
    temporary copies a killed run left beside its target. Each removal is one line."""
    from laam.progress import console

    removed = []
    for leftover in sorted(Path(folder).glob(pattern)) if Path(folder).is_dir() else []:
        try:
            fd = os.open(leftover, os.O_RDONLY)
        except OSError:
            continue
        try:
            if not lock_exclusive(fd, wait=False):
                continue  # being written by another process now
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
        except OSError:
            continue
        finally:
            os.close(fd)
        removed.append(leftover)
        console.print(f"removed {leftover}, {what}", highlight=False, soft_wrap=True)
    return removed


def published_modes(folder: Path) -> None:
    """Give every file under `folder` the mode open() gives a new file under the umask (executables keep their
    x bits): libraries that write through a private temporary file (safetensors writes 0600) leave it 0600."""
    mask = _umask()
    for path in [Path(folder), *Path(folder).rglob("*")]:
        if path.is_symlink():
            continue
        executable = path.is_dir() or path.stat().st_mode & 0o111
        os.chmod(path, (0o777 if executable else 0o666) & ~mask)


@contextmanager
def atomic_file(path: Path, suffix: str = ".tmp") -> Iterator:
    """Yield a binary file handle in `path`'s folder; when the block ends without error the file becomes `path`.

    An error inside the block (a failed checksum, a cut download, Ctrl-C) removes the temporary file; one left
    by a killed process is removed by the next atomic_file of the same path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(path.parent, f"{glob.escape(path.name)}.{'?' * 8}{suffix}")  # tempfile's 8 random characters
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f"{path.name}.", suffix=suffix, delete=False)
    lock = open(handle.name, "rb")  # held until the rename: the handle itself may be closed first
    try:
        lock_exclusive(lock, wait=True)
        with handle:
            yield handle
        os.chmod(handle.name, 0o666 & ~_umask())  # tempfile makes it 0600; a published file is as open() makes it
        os.replace(handle.name, path)
    except BaseException as error:
        Path(handle.name).unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None:
            error.filename = str(path)  # a failed write() names no file; a full disk is reported with the path
        raise
    finally:
        lock.close()


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    """Write `data` to `path` through a temporary file in the same folder, renamed into place."""
    with atomic_file(path) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def atomic_folder(final: Path, replace: bool = True) -> Iterator[Path]:
    """Yield an empty scratch folder beside `final`; when the block ends without error, it becomes `final`.

    replace=True: an existing `final` is replaced (a checkpoint, a model folder).
    replace=False: an existing `final` wins (a cache entry another process built first); ours is dropped.
    On error the scratch folder is removed and `final` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(final.parent, f".{glob.escape(final.name)}-tmp-{'?' * 8}")
    scratch = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}-tmp-"))
    lock = os.open(scratch, os.O_RDONLY)  # held until the end: marks the scratch folder in use
    try:
        lock_exclusive(lock, wait=True)
        yield scratch
        published_modes(scratch)  # mkdtemp makes it 0700, safetensors 0600: a model folder is as mkdir() makes it
        for _ in range(3):  # another process writing the same folder may rename its copy in between our steps
            if final.exists():
                if not replace:
                    shutil.rmtree(scratch, ignore_errors=True)  # theirs won, and it is the same thing
                    return
                shutil.rmtree(final, ignore_errors=True)
            try:
                os.rename(scratch, final)
                return
            except OSError:
                if not final.exists():  # a real failure (permissions, a full disk), not a race
                    raise
        raise OSError(f"{final} keeps being replaced by another process")
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    finally:
        os.close(lock)


def output_path(out: Path, relative: str) -> Path:
    """Where `relative` goes under the folder `out`, resolved; a LaamError when that place is not inside `out`.

    The check is on the resolved path, as tarfile's `data` filter does it: an absolute or `..` name, and a symlink
    anywhere on the way (`out/linux` pointing elsewhere, or the file itself), all resolve outside and are refused.
    Writing to the returned path writes where the check looked."""
    root = Path(out).resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or target == root:
        raise LaamError(f"refusing to write {Path(out) / relative}: it resolves to {target}, outside {out} "
                        "(a symlink or '..' on the way)")
    return target


def refuse_replacing(targets: dict[Path, str], force: bool) -> None:
    """Before writing files (path -> SHA-256 of the bytes about to go there): one that exists with other bytes is
    a LaamError naming it, unless `force`. A file that already holds exactly those bytes is no loss."""
    if force:
        return
    for path, digest in targets.items():
        if path.is_dir():
            raise LaamError(f"cannot write {path}: it is a folder")
        if path.exists() and sha256_file(path) != digest:
            raise LaamError(f"{path} already exists with other content; pass --force to replace it")


def seal(folder: Path, names: list[str]) -> Path:
    """Write `folder`/checksums.json, each named file's size and SHA-256, as the entry's last file: an entry
    without it was never finished, and one whose files differ from it was changed after it was written."""
    folder = Path(folder)
    record = {name: {"size": (folder / name).stat().st_size, "sha256": sha256_file(folder / name)} for name in names}
    return atomic_write_text(folder / SEAL_FILE, json.dumps(record, indent=1) + "\n")


def seal_fault(folder: Path) -> str | None:
    """Why a sealed folder cannot be trusted (no seal, a file missing, another size or SHA-256), or None."""
    folder = Path(folder)
    try:
        record = json.loads((folder / SEAL_FILE).read_text())
        expected = {name: (int(want["size"]), str(want["sha256"])) for name, want in record.items()}
    except FileNotFoundError:
        return f"no {SEAL_FILE}: it was never finished"
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return f"its {SEAL_FILE} is unreadable"
    if not expected:
        return f"its {SEAL_FILE} lists no file"
    for name, (size, digest) in expected.items():
        path = folder / name
        if Path(name).is_absolute() or ".." in Path(name).parts or not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size:,} bytes where {size:,} were written"
        if sha256_file(path) != digest:
            return f"{name} no longer has the SHA-256 it was written with"
    return None


def discard_damaged(folder: Path, what: str, fault: str) -> None:
    """Remove a damaged cache entry, saying so in one line (the caller builds it again)."""
    from laam.progress import console

    shutil.rmtree(folder, ignore_errors=True)
    console.print(f"{what} {folder} is damaged ({fault}); removed it and building it again", highlight=False,
                  soft_wrap=True)
