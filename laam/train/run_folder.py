"""A run folder's safety: what `--overwrite` may delete, what `--resume` needs, and one run at a time.

A folder becomes a LaaM run when training starts in it: `laam-run.json` marks it, and only a marked
folder is ever emptied by `--overwrite` (never the current folder, the home folder or a folder above
the current one). `laam.lock` holds a kernel lock (flock) for as long as a run writes there, so a
second run into the same folder stops with a clear message instead of interleaving metrics and
replacing the first one's model; the kernel drops the lock when a process dies however it dies, so a
crashed run's lock is simply taken over.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

from laam import __version__
from laam.errors import LaamError
from laam.io import atomic_write_text
from laam.progress import console

MARKER = "laam-run.json"
LOCK = "laam.lock"


def resumable(out: Path) -> bool:
    """True when the folder holds something `--resume` continues from: a checkpoint or a finished stage."""
    out = Path(out)
    return any(out.glob("checkpoints/step-*")) or any(out.glob("stage-*/checkpoints/step-*")) \
        or any(out.glob("stage-*/model/laam.json"))


def _is_run(out: Path) -> bool:
    return (out / MARKER).is_file()


def protected(out: Path) -> str | None:
    """Why `--overwrite` (and `laam ship --force`) must never delete `out`, if it must not."""
    here, home = Path.cwd().resolve(), Path.home().resolve()
    resolved = out.resolve()
    if resolved == here:
        return "it is the current folder"
    if resolved == home:
        return "it is your home folder"
    if resolved in here.parents:
        return "it holds the current folder"
    return None


def _holder(out: Path) -> str | None:
    """Who holds the folder's lock (as written in it), or None when nobody does."""
    lock = out / LOCK
    if not lock.is_file():
        return None
    try:
        with open(lock, "a+") as handle:
            if _try_lock(handle):
                return None
            handle.seek(0)
            return handle.read().strip() or "another process"
    except OSError:
        return None


def _try_lock(handle) -> bool:
    try:
        import fcntl
    except ImportError:  # not POSIX: no locking
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def check_run_folder(out: Path, resume: bool, overwrite: bool, start_fresh: bool = False,
                     locked: bool = False) -> None:
    """Refuse, before any work, a run folder this run must not write into (nothing is changed on disk).
    locked: this process holds the folder's lock (so it does not ask who does)."""
    out = Path(out)
    if resume and overwrite:
        raise LaamError("--resume continues a run and --overwrite deletes it: pass one of them")
    if out.exists() and not out.is_dir():
        raise LaamError(f"run folder {out} is a file, not a folder: choose another --out")
    holder = _holder(out) if out.is_dir() and not locked else None
    if holder:
        raise LaamError(f"run folder {out} is in use by another laam run ({holder}): wait for it to finish or "
                        "choose another --out")
    filled = out.is_dir() and any(p.name != LOCK for p in out.iterdir())
    if overwrite and filled:
        why = protected(out) or (None if _is_run(out) else f"it is not a LaaM run folder (no {MARKER})")
        if why:
            raise LaamError(f"--overwrite refuses to delete {out}: {why}; delete it yourself or choose another --out")
    elif resume and not resumable(out):
        if not start_fresh:
            raise LaamError(f"nothing to resume in {out}: it holds no checkpoint; pass --start-fresh with --resume "
                            "to start a new run there when there is none")
        if filled and not _is_run(out):
            raise LaamError(f"run folder {out} is not empty and not a LaaM run folder (no {MARKER}): choose "
                            "another --out")
    elif not resume and not overwrite and filled:
        raise LaamError(f"run folder {out} already exists: pass --resume to continue it, --overwrite to start "
                        "again, or another --out")


class RunFolder:
    """The locked run folder of one run (a context manager): checked, locked, emptied if asked, marked."""

    def __init__(self, out: Path, resume: bool, overwrite: bool, start_fresh: bool = False,
                 about: dict | None = None):
        self.out, self.resume, self.overwrite, self.start_fresh = Path(out), resume, overwrite, start_fresh
        self.about = about or {}
        self.handle = None

    def __enter__(self) -> RunFolder:
        out = self.out
        check_run_folder(out, self.resume, self.overwrite, self.start_fresh)
        try:
            out.mkdir(parents=True, exist_ok=True)
            self.handle = open(out / LOCK, "a+")
        except OSError as error:
            raise LaamError(f"cannot write to run folder {out}: {error.strerror or error}") from error
        if not _try_lock(self.handle):
            self.handle.close()
            raise LaamError(f"run folder {out} is in use by another laam run ({_holder(out) or 'another process'}): "
                            "wait for it to finish or choose another --out")
        try:
            self._take_over()
            # again, now that no other run can change the folder
            check_run_folder(out, self.resume, self.overwrite, self.start_fresh, locked=True)
            if self.overwrite:
                for entry in out.iterdir():
                    if entry.name != LOCK:
                        shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
            if not _is_run(out):
                atomic_write_text(out / MARKER, json.dumps({"laam_version": __version__, "created": _now(),
                                                            **self.about}, indent=1) + "\n")
        except OSError as error:
            self.__exit__(None, None, None)
            raise LaamError(f"cannot write to run folder {out}: {error.strerror or error}") from error
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _take_over(self) -> None:
        handle = self.handle
        handle.seek(0)
        previous = handle.read().strip()
        if previous:
            console.print(f"taking over the lock of {self.out} from a run that is no longer running ({previous})",
                          highlight=False, soft_wrap=True)
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {_now()}")
        handle.flush()

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            try:
                self.handle.seek(0)
                self.handle.truncate()  # an empty lock file: no run, nothing to take over
            except OSError:
                pass
            self.handle.close()  # closing drops the lock
            self.handle = None


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
