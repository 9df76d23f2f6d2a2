"""What makes a model, and the check that `--resume` continues the same one.

Every checkpoint records the settings that decide the weights (the corpus, the tokenizer, the model
shape, the seed and data order, the batch, the optimizer and its learning-rate schedule). A resumed
run compares them with its own: a silent change would continue another model from the middle of
this one (a new corpus or tokenizer sends the loss from 0.04 back to 9, and laam.json would record
the new settings as if they had made the model). A change is an error naming the setting, unless
`--allow-change SETTING` asks for it; an allowed change is recorded in the run's history, which
goes into laam.json.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from laam.errors import LaamError
from laam.train.checkpoint import checkpoints, newest_first, set_aside

# TrainConfig fields that decide the weights (the others decide when to stop, log, check or save)
TRAINING_SETTINGS = ("seed", "batch_size", "lr", "min_lr_ratio", "warmup_steps", "schedule", "decay_steps",
                     "weight_decay", "beta1", "beta2", "grad_clip")
LATER_SETTINGS = ("replay", "replay_wrong", "replay_margin", "replay_rest", "decay_at", "decay_epochs",
                  "grown_lr_scale")


def run_identity(model_config, config, corpus_fingerprint: str, tokenizer_sha256: str, decay_steps: int,
                 init_from: str | None) -> dict:
    """The settings that make the model, flat, by the names `--allow-change` takes (decay_steps: the steps the LR
    decays over, which follow --epochs/--max-steps unless --decay-steps is set)."""
    identity = {"corpus": corpus_fingerprint, "tokenizer": tokenizer_sha256, "init_from": init_from}
    identity.update({f"model.{k}": v for k, v in model_config.to_dict().items()})
    identity.update({name: getattr(config, name) for name in TRAINING_SETTINGS})
    defaults = type(config)()  # settings added later enter only when set, so older checkpoints resume unchanged
    identity.update({name: getattr(config, name) for name in LATER_SETTINGS
                     if getattr(config, name) != getattr(defaults, name)})
    identity["decay_steps"] = decay_steps
    return identity


def normalize(names) -> tuple[str, ...]:
    """`--allow-change batch-size` / `--allow-change model` -> setting names."""
    return tuple(name.strip().removeprefix("--").replace("-", "_") for name in names or ())


def changes(saved: dict, now: dict) -> dict[str, list]:
    """{setting: [saved value, current value]} for every setting that differs."""
    keys = [*now, *(k for k in LATER_SETTINGS if k in saved and k not in now)]  # one set back to its default too
    return {key: [saved.get(key), now.get(key)] for key in keys if saved.get(key) != now.get(key)}


def check_resume(saved: dict, now: dict, allowed, where: str) -> dict[str, list]:
    """The changes between a checkpoint's identity and this run's that `allowed` permits; any other is an error."""
    allowed = normalize(allowed)
    unknown = [a for a in allowed if a not in now and a not in LATER_SETTINGS and a != "model"]
    if unknown:
        raise LaamError(f"--allow-change {', '.join(unknown)}: not a setting; use one of {', '.join(now)} "
                        "(or model for every model.* setting)")
    differ = changes(saved, now)
    refused = {k: v for k, v in differ.items()
               if k not in allowed and not (k.startswith("model.") and "model" in allowed)}
    if refused:
        shown = "; ".join(f"{k} {_short(old)} -> {_short(new)}" for k, (old, new) in refused.items())
        flags = " ".join(f"--allow-change {k}" for k in refused)
        keep = f" (or keep the schedule with --decay-steps {refused['decay_steps'][0]})" \
            if "decay_steps" in refused and isinstance(refused["decay_steps"][0], int) else ""
        raise LaamError(f"cannot resume {where}: it was trained with other settings ({shown}); resume with the same "
                        f"settings, or pass {flags} to change them on purpose{keep}")
    return differ


def _short(value) -> str:
    return f"{value[:12]}…" if isinstance(value, str) and len(value) > 16 else repr(value)


def resume_from(run_dir: Path, identity: dict, model_config: dict, allowed, load: Callable[[Path], dict],
                report: Callable[[str], None], move: bool = True) -> tuple[Path, dict, dict[str, list]]:
    """(checkpoint, its state, allowed changes) of the newest good checkpoint of a run, loaded by `load`.

    A damaged checkpoint (manifest mismatch, or a file that does not load) is reported and set aside and the one
    before it is tried; one of other settings is an error (check_resume)."""
    if not checkpoints(run_dir):
        raise LaamError(f"nothing to resume in {run_dir}: no checkpoints/step-* folder")
    for folder, saved in newest_first(run_dir, report, move):
        if "identity" in saved:
            changed = check_resume(saved["identity"], identity, allowed, str(folder))
        elif saved.get("model_config") != model_config:  # saved before identities were kept
            raise LaamError(f"{folder} was trained with another model configuration; resume with the same "
                            f"settings (saved: {saved.get('model_config')})")
        else:
            changed = {}
        try:
            state = load(folder)
        except LaamError:  # the checkpoint is sound, this run's settings cannot start from it
            raise
        except Exception as error:  # a file that passed its manifest check but does not load
            set_aside(folder, f"{type(error).__name__}: {error}"[:300], report, move)
            continue
        if changed:
            report(f"resuming {folder} with changed settings, as allowed: "
                   + ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items()))
        return folder, state, changed
    raise LaamError(f"nothing to resume in {run_dir}: every checkpoint is damaged (set aside as "
                    "checkpoints/damaged-step-*)")
