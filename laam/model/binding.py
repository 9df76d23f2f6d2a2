"""What a report was computed on: the SHA-256 of every file of a model folder that decides its output.

An audit, a compression report or a training result is only evidence about the weights, tokenizer and decoding
code it ran on. Each report records `report_binding(...)` under `binding`; before the card, the BOM or a push
quote a report, `binding_problems` compares that record with the folder as it is now, so that a report of other
weights (an earlier run, a `train --resume` that replaced `model/`, an edited tokenizer_config.json) is never
quoted as if it were about these.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from laam import __version__
from laam.io import sha256_file
from laam.provenance import git_commit, git_dirty, package_version

BINDING_KEY = "binding"
LIBRARIES = ("laam", "transformers", "tokenizers", "torch", "safetensors")  # the versions a report ran with
# every file of a folder that changes what any decoder (laam's engine, stock transformers with the folder's
# custom_generate, the GGUF script) produces from it; laam.json is left out: it describes the run and is
# rewritten by later stages, while its corpus fingerprint is bound below
BOUND_FILES = ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
               "tokenizer_config.json", "special_tokens_map.json", "custom_generate/generate.py",
               "regenerate_gguf.py")


def fingerprints(model_dir: Path) -> dict[str, str]:
    """SHA-256 of each bound file the folder holds (name -> hex digest)."""
    folder = Path(model_dir)
    return {name: sha256_file(folder / name) for name in BOUND_FILES if (folder / name).is_file()}


def _corpus_fingerprint(model_dir: Path) -> str | None:
    from laam.model.info import INFO_FILE, read_model_info

    return read_model_info(model_dir).corpus_fingerprint if (Path(model_dir) / INFO_FILE).is_file() else None


def decoding_digest(model_dir: Path) -> str | None:
    """SHA-256 of the laam.json fields decoders read (laam's engine its window rule, the stock harness the
    encodings its bytes are written in, the folder check the tokenizer's hash): an edit to them changes what a
    decoder gives back, so they are bound although laam.json itself is not. None: the folder has no laam.json."""
    import hashlib
    import json

    from laam.model.info import INFO_FILE, read_model_info

    if not (Path(model_dir) / INFO_FILE).is_file():
        return None
    info = read_model_info(model_dir)
    fields = {"context": info.context, "stride": info.stride, "encodings": info.encodings,
              "tokenizer_sha256": info.tokenizer_sha256}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def report_binding(model_dir: Path, selection: str | None = None, dtype: str = "float32",
                   device: str = "cpu") -> dict:
    """The `binding` object a report records: the folder's fingerprints, its corpus, the selection of files the
    report covers (None: all), and the code and numerical environment that computed it."""
    import torch

    return {"files": fingerprints(model_dir), "corpus_fingerprint": _corpus_fingerprint(model_dir),
            "decoding": decoding_digest(model_dir), "selection": selection, "laam_version": __version__,
            "git_commit": git_commit(),
            "git_dirty": git_dirty(), "torch": torch.__version__, "dtype": dtype, "device": device,
            "libraries": {name: package_version(name) for name in LIBRARIES},
            "created": datetime.now(timezone.utc).isoformat(timespec="microseconds")}


def binding_problems(report: dict, model_dir: Path) -> list[str]:
    """What no longer matches between a report's binding and the folder now (empty: the report is about it)."""
    binding = report.get(BINDING_KEY) if isinstance(report, dict) else None
    if not isinstance(binding, dict) or not isinstance(binding.get("files"), dict):
        return ["it records no binding (no SHA-256 of the weights and tokenizer it was computed on)"]
    now = fingerprints(model_dir)
    problems = []
    if "model.safetensors" not in binding["files"]:
        problems.append("it records no SHA-256 of model.safetensors")
    # a bound file the report does not name was not what it ran on; regenerate_gguf.py is written by `laam export
    # gguf`, often after the report, and a GGUF decoder's result is checked by the GGUF's own SHA-256
    problems += [f"it records no SHA-256 of {name}, which the folder holds now" for name in now
                 if name not in binding["files"] and name not in ("model.safetensors", "regenerate_gguf.py")]
    for name, digest in binding["files"].items():
        if name not in now:
            problems.append(f"{name} is gone")
        elif now[name] != digest:
            problems.append(f"{name} changed: SHA-256 {now[name][:12]}… now, {digest[:12]}… in the report")
    corpus = _corpus_fingerprint(model_dir)
    if binding.get("corpus_fingerprint") != corpus:
        problems.append(f"the corpus fingerprint is {corpus}, the report's {binding.get('corpus_fingerprint')}")
    # reports made before the decoding fields were bound record no digest of them: compared only when recorded
    if "decoding" in binding and binding["decoding"] != decoding_digest(model_dir):
        problems.append("laam.json's decoding fields (context, stride, encodings, tokenizer_sha256) changed")
    return problems


def created(report: dict) -> str:
    """When a bound report was made (ISO 8601, UTC; '' when it records no binding), for choosing the newest."""
    binding = report.get(BINDING_KEY) if isinstance(report, dict) else None
    return binding.get("created", "") if isinstance(binding, dict) else ""


@dataclass(frozen=True)
class FolderState:
    """What a folder's bound files are at one moment: the SHA-256 of each (fingerprints) and of laam.json's decoding
    fields (decoding_digest), i.e. everything a report's binding records about the folder itself."""

    files: dict[str, str]
    decoding: str | None


def folder_state(model_dir: Path) -> FolderState:
    """The folder's state now; taken before a long run reads the model, compared by changed_during after it."""
    return FolderState(fingerprints(model_dir), decoding_digest(model_dir))


def changed_during(before: FolderState, model_dir: Path, during: str) -> str | None:
    """Why a run that read `model_dir` may not write its report: "MODEL changed during DURING (names)" when a bound
    file or laam.json's decoding fields differ from `before`; None when the folder is as it was. A report's binding
    is hashed when the report is written, so without this a file replaced during an hours-long audit, compression
    or ship would be bound to results it did not produce. One rule for `laam audit`, `laam compress`, `laam ship`."""
    now = folder_state(model_dir)
    if now == before:
        return None
    changed = sorted(name for name in {**before.files, **now.files} if before.files.get(name) != now.files.get(name))
    if now.decoding != before.decoding:
        changed.append("laam.json decoding fields")
    return f"{model_dir} changed during {during} ({', '.join(changed)})"
