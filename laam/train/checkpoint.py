"""Checkpoints of a run: weights (safetensors), optimizer, scheduler, RNG and the run state, written atomically.

Tensors and numbers only (read back with weights_only=True), into a scratch folder renamed into place:
a crash mid-save never leaves a half checkpoint that --resume would pick. Each checkpoint carries
`manifest.json` (every file's size and SHA-256); one that no longer matches it, or does not load, is
reported, set aside as `damaged-step-N`, and the previous good checkpoint is used. A save that fails
(disk full, read-only folder) is one LaamError line and leaves the previous checkpoints as they were.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from laam.errors import LaamError
from laam.io import atomic_folder, sha256_file

MANIFEST = "manifest.json"
FILES = ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", "state.json")  # what every checkpoint has
_STEP = re.compile(r"^step-(\d+)$")


def checkpoints(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / "checkpoints"
    found = [p for p in folder.iterdir() if _STEP.match(p.name) and p.is_dir()] if folder.is_dir() else []
    return sorted(found, key=lambda p: int(_STEP.match(p.name)[1]))


def save_checkpoint(run_dir: Path, model, optimizer, scheduler, state: dict, keep: int, sampler=None) -> Path:
    """Save step `state["step"]` and keep only the newest `keep` checkpoints (sampler: train.batches.WindowSampler,
    whose state is sampler.pt)."""
    from safetensors import SafetensorError
    from safetensors.torch import save_model

    final = Path(run_dir) / "checkpoints" / f"step-{state['step']:08d}"
    previous = checkpoints(run_dir)
    try:
        with atomic_folder(final) as scratch:
            save_model(model, str(scratch / "model.safetensors"))
            torch.save(optimizer.state_dict(), scratch / "optimizer.pt")
            torch.save(scheduler.state_dict(), scratch / "scheduler.pt")
            rng = {"torch": torch.get_rng_state()}
            if torch.cuda.is_available():
                rng["cuda"] = torch.cuda.get_rng_state_all()
            torch.save(rng, scratch / "rng.pt")
            if sampler is not None:
                torch.save(sampler.state_dict(), scratch / "sampler.pt")
            (scratch / "state.json").write_text(json.dumps(state, indent=1))
            manifest = {path.name: {"bytes": path.stat().st_size, "sha256": sha256_file(path)}
                        for path in sorted(scratch.iterdir()) if path.is_file()}  # every file, whatever it holds
            (scratch / MANIFEST).write_text(json.dumps({"format": 1, "files": manifest}, indent=1))
    except (OSError, SafetensorError) as error:  # safetensors reports a failed write as its own error
        kept = f"the previous checkpoint {previous[-1]} is intact" if previous else "no earlier checkpoint"
        raise LaamError(f"could not save checkpoint {final.name} in {final.parent}: "
                        f"{getattr(error, 'strerror', None) or ' '.join(str(error).split())}; {kept}") from error
    for old in checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_problem(folder: Path) -> str | None:
    """What is wrong with a checkpoint's files (missing, or another size or SHA-256 than its manifest), or None."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():  # written before manifests existed: its files must at least be there
        missing = [name for name in FILES if not (folder / name).is_file()]
        return f"{', '.join(missing)} missing" if missing else None
    try:
        listed = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return f"{MANIFEST} unreadable"
    for name, expected in listed.items():
        path = folder / name
        if not path.is_file():
            return f"{name} missing"
        if path.stat().st_size != expected["bytes"]:
            return f"{name} has {path.stat().st_size:,} bytes, its manifest says {expected['bytes']:,}"
        if sha256_file(path) != expected["sha256"]:
            return f"{name} does not match the SHA-256 in its manifest"
    return None


def read_state(folder: Path) -> dict:
    return json.loads((Path(folder) / "state.json").read_text())


def apply_schedule(optimizer, scheduler) -> None:
    """Set each parameter group's LR to what the LambdaLR gives at its current step, as its step() would: after a
    resume with a changed peak LR or schedule, the saved LR is the old schedule's."""
    for group, peak, factor in zip(optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = peak * factor(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


def load_checkpoint(folder: Path, model, optimizer, scheduler, sampler=None, grow=None) -> dict:
    """Continue from a checkpoint (grow: a train.grow.Growth when `model` is a grown version of the saved one)."""
    from safetensors.torch import load_model

    # the settings this invocation has (equal to the saved ones unless --allow-change changed one): torch's state
    # dicts carry the saved peak LR, betas and weight decay, which would silently override a changed setting
    settings = [{k: group[k] for k in ("betas", "weight_decay", "eps")} for group in optimizer.param_groups]
    peaks = list(scheduler.base_lrs)
    if grow is None:
        load_model(model, str(folder / "model.safetensors"))
        optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    else:
        optimizer.load_state_dict(grow.load(folder, model, optimizer))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    scheduler.base_lrs = peaks
    for group, setting, peak in zip(optimizer.param_groups, settings, peaks):
        group.update(setting, initial_lr=peak)
    apply_schedule(optimizer, scheduler)
    rng = torch.load(folder / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    if sampler is not None and (folder / "sampler.pt").is_file():  # checkpoints before replay have none: uniform
        sampler.load_state_dict(torch.load(folder / "sampler.pt", weights_only=True))
    return read_state(folder)


def newest_first(run_dir: Path, report: Callable[[str], None], move: bool = True) -> Iterator[tuple[Path, dict]]:
    """(checkpoint, its state) from the newest good one back; a damaged one is reported and set aside (renamed
    only when `move`: one process of a multi-process run does it).

    The caller loads what it takes and calls `set_aside(folder, why, report)` if loading fails."""
    for folder in reversed(checkpoints(run_dir)):
        problem = checkpoint_problem(folder)
        if problem is None:
            try:
                state = read_state(folder)
            except (OSError, ValueError) as error:
                problem = f"state.json unreadable ({error})"
        if problem is not None:
            set_aside(folder, problem, report, move)
            continue
        yield folder, state


def set_aside(folder: Path, why: str, report: Callable[[str], None], move: bool = True) -> Path:
    """Rename a damaged checkpoint to damaged-step-N (kept for inspection, never picked again) and say so."""
    target = folder.with_name(f"damaged-{folder.name}")
    if move:
        shutil.rmtree(target, ignore_errors=True)
        folder.rename(target)
    report(f"checkpoint {folder} is damaged ({' '.join(why.split())}); set aside as {target.name}, "
           "trying the one before it")
    return target
