"""Publish a model folder to the Hugging Face Hub with huggingface_hub.

Only the documented artefacts go up (weights, tokenizer, custom_generate/generate.py, card, BOM, openness files,
manifest, audit and its margins.npz, compression.json, ship.json, training curve, GGUF and its regenerate_gguf.py),
never caches or checkpoints; an audit.json, margins.npz, compression.json or ship.json whose binding
(model.binding) does not match the folder stops the upload, and so does a card or BOM quoting laam.json's training
verdict while its binding names other files.
The token comes from the environment (HF_TOKEN) or `hf auth login`, through huggingface_hub; LaaM never reads,
prints or stores it.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from laam.errors import LaamError
from laam.io import sha256_file
from laam.model.binding import binding_problems
from laam.model.folder import CUSTOM_GENERATE_FILE, check_model_folder
from laam.proof.margin import MARGINS_FILE, read_margins
from laam.publish.card import check_card
from laam.publish.facts import (
    AUDIT_FILE,
    CARD_FILE,
    COMPRESSION_FILE,
    MANIFEST_FILE,
    SHIP_FILE,
    TRAINING_VERDICT,
    not_the_audits_margins,
    training_binding_note,
)

BOM_FILE = "bom.cdx.json"
UPLOAD_PATTERNS = (
    "*.safetensors", "config.json", "generation_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
    "laam.json", CARD_FILE, BOM_FILE, "mof.yml", MANIFEST_FILE, "corpus.json",
    AUDIT_FILE, "audit.html", MARGINS_FILE, COMPRESSION_FILE, SHIP_FILE, "training_curve.png", "metrics.jsonl",
    "*.gguf", "regenerate_gguf.py",
)
NESTED = (CUSTOM_GENERATE_FILE,)  # files in subfolders that go up too (transformers loads it with trust_remote_code)
REQUIRED = ("config.json", "tokenizer.json", "laam.json", CARD_FILE, BOM_FILE, MANIFEST_FILE)


@dataclass
class PushPlan:
    repo_id: str
    folder: Path
    files: list[tuple[str, int]]  # (path in the repo, bytes)
    problems: list[str] = field(default_factory=list)  # stop the upload
    warnings: list[str] = field(default_factory=list)  # worth saying, not blocking

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


def plan_push(folder: Path, repo_id: str) -> PushPlan:
    """What `laam push` would upload, and what is wrong with it (checked offline)."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    folder = Path(folder)
    if not folder.is_dir():
        raise LaamError(f"model folder {folder} does not exist")
    if "/" not in repo_id:
        raise LaamError(f"repo id {repo_id!r} must be ORG/NAME (or USER/NAME)")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise LaamError(f"invalid repo id {repo_id!r}: {error}") from error
    files = sorted([(p.name, p.stat().st_size) for p in folder.iterdir()
                    if p.is_file() and any(fnmatch.fnmatch(p.name, pattern) for pattern in UPLOAD_PATTERNS)]
                   + [(name, (folder / name).stat().st_size) for name in NESTED if (folder / name).is_file()])
    plan = PushPlan(repo_id, folder, files)
    names = {name for name, _ in files}
    plan.problems += [f"missing {name} (run `laam card --model {folder}`)" if name in (CARD_FILE, BOM_FILE,
                      MANIFEST_FILE) else f"missing {name}" for name in REQUIRED if name not in names]
    if not any(name.endswith(".safetensors") for name in names):
        plan.problems.append("missing the weights (*.safetensors)")
    elif "config.json" in names and "laam.json" in names:
        try:
            check_model_folder(folder)  # the tokenizer and the weights belong together
        except LaamError as error:
            plan.problems.append(str(error))
    if CARD_FILE in names:
        plan.problems += check_card(folder)
        text = (folder / CARD_FILE).read_text()
        if f'"{repo_id}"' not in text:
            plan.warnings.append(f"the card's examples do not name {repo_id}: rerun `laam card --model {folder} "
                                 f"--repo-id {repo_id}` so they load from the Hub")
    if BOM_FILE in names:
        plan.problems += _bom_problems(folder)
    if AUDIT_FILE not in names:
        plan.warnings.append("no audit.json: the card says the model is not audited yet")
    for name in (AUDIT_FILE, COMPRESSION_FILE, SHIP_FILE):
        if name in names:
            plan.problems += [f"{name} was not computed on these files ({problem}): rerun the command that wrote "
                              f"it, then `laam card`" for problem in _report_problems(folder / name, folder)]
    if MARGINS_FILE in names:
        try:
            margins, _ = read_margins(folder / MARGINS_FILE, folder)  # its binding checked as the card checked it
        except LaamError as error:
            plan.problems.append(f"{error}: rerun `laam audit`, then `laam card`")
        else:
            audit = json.loads((folder / AUDIT_FILE).read_text()) if AUDIT_FILE in names else None
            unlike = not_the_audits_margins(len(margins), audit, AUDIT_FILE)
            if unlike:
                plan.problems.append(f"{MARGINS_FILE}: {unlike}: rerun `laam card`, which copies the audit's own")
    if "laam.json" in names:
        plan_training(plan, names)
    return plan


def plan_training(plan: PushPlan, names: set[str]) -> None:
    """laam.json's training result goes up as recorded, but while its binding names other files (a weights file
    replaced since training) it is not quoted: one line says so, and a card or BOM that quotes its verdict (written
    before the change) stops the upload."""
    folder = plan.folder
    note = training_binding_note(_read_info_json(folder).get("training") or {}, folder)
    if note is None:
        return
    plan.warnings.append(f"not quoted: {note}")
    quoting = [name for name, quotes in ((CARD_FILE, _card_quotes_training), (BOM_FILE, _bom_quotes_training))
               if name in names and quotes(folder / name)]
    plan.problems += [f"{name} quotes laam.json's training verdict, which is about other files: rerun `laam card "
                      f"--model {folder}`" for name in quoting]


def _bom_problems(folder: Path) -> list[str]:
    """The BOM and the card are written together by `laam card` for the weights the BOM hashes: a BOM naming other
    weights (the weights replaced since) means both describe other files, so the push stops."""
    weights = folder / "model.safetensors"
    try:
        hashes = json.loads((folder / BOM_FILE).read_text())["metadata"]["component"].get("hashes") or []
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return [f"{BOM_FILE} is unreadable or has no model component: rerun `laam card --model {folder}`"]
    recorded = [h.get("content") for h in hashes if isinstance(h, dict) and h.get("alg") == "SHA-256"]
    if not weights.is_file():
        return []  # named as missing weights above
    now = sha256_file(weights)
    if recorded == [now]:
        return []
    named = f"SHA-256 {recorded[0][:12]}…" if recorded and recorded[0] else "no SHA-256"
    return [f"{BOM_FILE} and {CARD_FILE} were written for other weights ({named}; model.safetensors is "
            f"{now[:12]}…): rerun `laam card --model {folder}`"]


def _read_info_json(folder: Path) -> dict:
    try:
        info = json.loads((folder / "laam.json").read_text())
    except (OSError, ValueError):
        return {}  # check_model_folder names an unreadable laam.json
    return info if isinstance(info, dict) else {}


def _card_quotes_training(card: Path) -> bool:
    """The card's training table (publish.sections.training_section) has a row of the training verdict."""
    return any(re.match(rf"\| ({'|'.join(TRAINING_VERDICT)}) \|", line) for line in card.read_text().splitlines())


def _bom_quotes_training(bom: Path) -> bool:
    """The BOM's model card has a property of the training verdict (publish.bom.training_properties)."""
    try:
        properties = json.loads(bom.read_text())["metadata"]["component"]["modelCard"]["properties"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return any(p.get("name", "").startswith("laam:training_") and p.get("name") != "laam:training_result"
               for p in properties)


def _report_problems(path: Path, folder: Path) -> list[str]:
    """Why a report in the folder is not about the folder as it is now (its binding, model.binding)."""
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return [f"unreadable: {error}"]
    return binding_problems(report, folder)


def push(plan: PushPlan, private: bool = False, message: str | None = None) -> str:
    """Create the repo if needed and upload the planned files in one commit; returns the commit URL."""
    from huggingface_hub import HfApi, get_token

    if plan.problems:
        raise LaamError("not pushing: " + "; ".join(plan.problems))
    if get_token() is None:
        raise LaamError("no Hugging Face token: set HF_TOKEN or run `hf auth login`")
    api = HfApi()
    api.create_repo(plan.repo_id, repo_type="model", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(plan.folder), repo_id=plan.repo_id, repo_type="model",
        allow_patterns=[name for name, _ in plan.files],
        commit_message=message or f"Upload {plan.folder.name} with laam push",
    )
    return commit.commit_url
