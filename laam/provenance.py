"""Where a result came from: the laam commit and the numerical environment it ran in."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_commit() -> str | None:
    """HEAD of the laam checkout this code runs from, or None (an installed wheel has no git)."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


def package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def environment(device: str = "cpu", attention: str | None = None, packages: tuple[str, ...] = ()) -> dict:
    """The software and device a float computation ran on (what must match to reproduce it bit for bit)."""
    import torch
    import transformers

    env = {"torch": torch.__version__, "transformers": transformers.__version__,
           **{name: package_version(name) for name in packages}, "device": device, "threads": torch.get_num_threads()}
    if attention is not None:
        env["attention"] = attention
    if device.startswith("cuda"):
        env["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return env


# instruction sets that change CPU training speed: bf16 is emulated without AVX512-BF16 or AMX
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")


def cpu_description() -> dict:
    """The CPU a computation ran on: model name and the speed-relevant flags from /proc/cpuinfo, and the CPUs this
    process may use (a run resumed on another machine kind trains at another speed: every slice records it)."""
    import os
    import platform

    model, flags = platform.processor() or "unknown CPU", []
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags":
            present = set(value.split())
            flags = [f for f in CPU_FLAGS if f in present]
            break
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return {"cpu": model, "cpu_flags": flags, "cpus": cpus}


def git_dirty() -> bool | None:
    """Whether the laam checkout has uncommitted changes to tracked files (None outside a git checkout): a result
    made by a dirty tree is not reproduced by its commit alone."""
    try:
        result = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                text=True, timeout=5, cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(result.stdout.strip()) if result.returncode == 0 else None


def folder_revision(folder: Path, files: tuple[str, ...]) -> str | None:
    """The commit a folder is at when it is itself a git repository (a clone of its Hub repository) and `files`
    are unchanged from that commit: the revision a reader pins to download exactly these files. None otherwise
    (not a repository's top level, no git, or one of `files` edited since)."""
    folder = Path(folder).resolve()

    def git(*args: str) -> str | None:
        try:
            result = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.SubprocessError):
            return None
        return result.stdout.strip() if result.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if not top or Path(top).resolve() != folder:
        return None
    head = git("rev-parse", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=all", "--", *files)
    return head if head and changed == "" else None
