"""Checkpoints of a run: weights (safetensors), optimizer, scheduler, RNG and the run state, written atomically.

Tensors and numbers only (read back with weights_only=True), into a scratch folder renamed into place:
a crash mid-save never leaves a half checkpoint that --resume would pick.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from laam.io import atomic_folder


def checkpoints(run_dir: Path) -> list[Path]:
    folder = Path(run_dir) / "checkpoints"
    return sorted(folder.glob("step-*"), key=lambda p: int(p.name.split("-")[1])) if folder.is_dir() else []


def save_checkpoint(run_dir: Path, model, optimizer, scheduler, state: dict, keep: int, sampler=None) -> Path:
    """Save step `state["step"]` and keep only the newest `keep` checkpoints (sampler: train.batches.WindowSampler)."""
    from safetensors.torch import save_model

    final = Path(run_dir) / "checkpoints" / f"step-{state['step']:08d}"
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
    for old in checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(folder: Path, model, optimizer, scheduler, sampler=None) -> dict:
    from safetensors.torch import load_model

    load_model(model, str(folder / "model.safetensors"))
    optimizer.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    rng = torch.load(folder / "rng.pt", weights_only=True)
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    if sampler is not None and (folder / "sampler.pt").is_file():  # checkpoints before replay have none: uniform
        sampler.load_state_dict(torch.load(folder / "sampler.pt", weights_only=True))
    return json.loads((folder / "state.json").read_text())
