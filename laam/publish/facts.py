"""The facts about a model folder that the card, the openness checklists and the bill of materials are made of.

`gather_facts` collects what a run left behind (laam.json, config.json, the weights, the tokenizer, the
corpus it names, and when present the training metrics, the audit with its margins.npz, compression.json and
ship.json). Those reports, and laam.json's training verdict, are quoted only when their binding (model.binding)
matches the folder as it is now; one found but not matching is named in `report_notes` instead. Nothing here
renders; publish.card, publish.openness and publish.bom turn the facts into documents.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from laam.data.corpus import Corpus, license_counts
from laam.data.fetch import ARCHIVE_SUFFIXES, DEFAULT_MIRROR, parse_version
from laam.data.tokenizer import iter_token_ids
from laam.errors import LaamError
from laam.io import sha256_file
from laam.model.binding import BINDING_KEY, BOUND_FILES, binding_problems, created
from laam.model.folder import check_model_folder
from laam.model.info import ModelInfo, load_training_corpus
from laam.model.weights import safetensors_header
from laam.proof.compress.run import REPORT_FILE as COMPRESSION_FILE
from laam.proof.compress.run import read_compression
from laam.proof.margin import MARGINS_FILE
from laam.provenance import folder_revision, git_commit
from laam.train.metrics import find_metrics, read_metrics

CARD_FILE = "README.md"
AUDIT_FILE, AUDIT_HTML = "audit.json", "audit.html"
AUDIT_HTML_NAMES = (AUDIT_HTML, "report.html")  # `laam audit` writes report.html beside audit.json
CURVE_FILE = "training_curve.png"
SHIP_FILE = "ship.json"  # laam ship's dtype decision and its evidence, the exactness and size checks (publish.ship)
MANIFEST_FILE, CORPUS_FILE = "manifest.jsonl", "corpus.json"
CODE_LICENSE = "MIT"  # the laam package's own license (pyproject.toml)
# Hugging Face's license ids (https://huggingface.co/docs/hub/repositories-licenses) for SPDX ids it lists;
# any other SPDX id is written as license: other + license_name.
HF_LICENSES = {
    "MIT": "mit", "Apache-2.0": "apache-2.0", "GPL-2.0-only": "gpl-2.0", "GPL-2.0-or-later": "gpl-2.0",
    "GPL-3.0-only": "gpl-3.0", "GPL-3.0-or-later": "gpl-3.0", "LGPL-2.1-only": "lgpl-2.1",
    "LGPL-2.1-or-later": "lgpl-2.1", "LGPL-3.0-only": "lgpl-3.0", "AGPL-3.0-only": "agpl-3.0",
    "BSD-2-Clause": "bsd-2-clause", "BSD-3-Clause": "bsd-3-clause", "MPL-2.0": "mpl-2.0",
    "CC0-1.0": "cc0-1.0", "CC-BY-4.0": "cc-by-4.0", "CC-BY-SA-4.0": "cc-by-sa-4.0", "Unlicense": "unlicense",
}


@dataclass
class CardConfig:
    """What the run's facts cannot say: the license the weights are declared under, and where they will live."""

    license: str = "MIT"  # SPDX id of the weights' declared license (the original LaaM used MIT)
    repo_id: str | None = None  # ORG/NAME on the Hugging Face Hub, for the loading examples
    audit: Path | None = None  # audit.json, or a folder holding it (default: the model folder, then its run folder)
    docs_license: str = "CC-BY-4.0"  # license of the card, data card and reports
    technical_report: str | None = None  # URL or path of a technical report, if one exists
    research_paper: str | None = None  # URL of a research paper, if one exists
    code_url: str | None = None  # where the laam source code is published (its git repository)
    original_call: bool = True  # run the original LaaM's sampling call on the folder and show its output

    def __post_init__(self):
        self.license, self.docs_license = spdx_id(self.license), spdx_id(self.docs_license)


@dataclass
class Facts:
    """Everything the card, the openness checklists and the bill of materials are made of."""

    folder: Path
    name: str
    info: ModelInfo
    corpus: Corpus
    config: dict  # config.json
    parameters: int
    tensors: dict[str, list[int]]  # name -> shape, from the safetensors header
    weights_dtypes: dict[str, int]  # stored dtype ("F32", "BF16", ...) -> tensors, from the same header
    vocab_size: int
    record_tokens: dict[str, int]  # path -> tokens of its training record (markers included)
    laam_version: str | None  # of the code that trained the model, as the run recorded it (None: not recorded)
    git_commit: str | None  # of the code that trained the model, if the run recorded it
    card_commit: str  # of the code writing the card now ("unknown" outside a git checkout)
    audit: dict | None = None
    git_dirty: bool | None = None  # whether that code had uncommitted changes (None: not recorded)
    audit_html_path: Path | None = None  # the quoted audit's page beside it, when it is its own (audit_report)
    compression: dict | None = None  # compression.json from `laam compress`, when the folder has one
    metrics: list[dict] = field(default_factory=list)
    curve: bool = False  # training_curve.png in the folder
    checkpoints: Path | None = None  # the run's intermediate checkpoints, if they survive
    original_call: dict | None = None  # publish.original_call.OriginalCall, when run for this card
    audit_path: Path | None = None  # the audit.json quoted (its binding matches the folder now)
    report_notes: list[str] = field(default_factory=list)  # reports found but not quoted, one line each
    revision: str | None = None  # the git/Hub commit holding exactly these decoding files (provenance.folder_revision)
    ship: dict | None = None  # ship.json (laam ship), when its binding matches the folder now
    ship_path: Path | None = None  # the ship.json quoted
    margins: dict | None = None  # margins.npz's {"positions", "files"}, when bound to these files (find_margins)
    margins_path: Path | None = None  # the margins.npz quoted
    # per evidence file (margins.npz, ship.json): why each one found was left out (find_margins, find_ship); the
    # BOM says it beside the file it does not cite, the card among report_notes
    evidence_notes: dict[str, list[str]] = field(default_factory=dict)

    @property
    def audit_html(self) -> bool:
        """The quoted audit's page is beside it (audit_html_path)."""
        return self.audit_html_path is not None

    @property
    def training(self) -> dict:
        return self.info.training

    @property
    def data_tokens(self) -> int:
        return sum(self.record_tokens.values())

    @property
    def data_bytes(self) -> int:
        return sum(len(f.data) for f in self.corpus.files)

    @property
    def data_licenses(self) -> dict[str, int]:
        return license_counts(self.corpus.files)

    @property
    def included_rows(self) -> list[dict]:
        return [row for row in self.corpus.manifest if row["included"]]


def spdx_id(license_id: str) -> str:
    """An SPDX license id in its canonical spelling ("mit" -> "MIT"); LicenseRef-… ids pass as they are."""
    from cyclonedx.spdx import fixup_id

    if license_id.startswith("LicenseRef-") and len(license_id) > len("LicenseRef-"):
        return license_id
    fixed = fixup_id(license_id)
    if fixed is None:
        raise LaamError(f"{license_id!r} is not an SPDX license id (e.g. MIT, Apache-2.0, GPL-2.0-only; "
                        "or LicenseRef-NAME for a license of your own)")
    return fixed


def _number(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


@dataclass
class ChosenReport:
    """The report a card may quote (None: none matches the folder now) and one line per report left out."""

    path: Path | None = None
    report: dict | None = None
    notes: list[str] = field(default_factory=list)


def _shown(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(folder.resolve().parent))
    except ValueError:
        return str(path)


def find_audit(folder: Path, audit: Path | None) -> ChosenReport:
    """The audit whose binding matches the folder as it is now: the given file or folder (a mismatch is an error),
    else the newest matching one of the model folder's copy, MODEL/audit/ and its run folder's; every audit found
    but not matching is left out with a one-line note."""
    folder = Path(folder)
    if audit is not None:
        path = Path(audit) / AUDIT_FILE if Path(audit).is_dir() else Path(audit)
        if not path.is_file():
            raise LaamError(f"no audit at {path} (run `laam audit` first, or leave --audit out)")
        report = _read_audit(path)
        problems = binding_problems(report, folder)
        if problems:
            raise LaamError(f"{path} is not an audit of {folder} as it is now: {'; '.join(problems)} "
                            f"(run `laam audit --model {folder}`)")
        return ChosenReport(path, report)
    chosen, seen = ChosenReport(), set()
    for candidate in (folder / AUDIT_FILE, folder / "audit" / AUDIT_FILE, folder.parent / AUDIT_FILE,
                      folder.parent / "audit" / AUDIT_FILE):
        if not candidate.is_file() or candidate.resolve() in seen:
            continue
        seen.add(candidate.resolve())
        try:
            report = _read_audit(candidate)
        except LaamError as error:
            chosen.notes.append(f"`{_shown(candidate, folder)}`: {error}")
            continue
        problems = binding_problems(report, folder)
        if problems:
            chosen.notes.append(f"`{_shown(candidate, folder)}`: not computed on these files ({problems[0]})")
        elif chosen.report is None or created(report) > created(chosen.report):
            chosen.path, chosen.report = candidate, report
    return chosen


def find_compression(folder: Path) -> ChosenReport:
    """compression.json when its binding matches the folder now; otherwise nothing, with the reason."""
    report = read_compression(folder)
    if report is None:
        return ChosenReport()
    problems = binding_problems(report, folder)
    if problems:
        return ChosenReport(notes=[f"`{_shown(Path(folder) / COMPRESSION_FILE, folder)}`: not computed on these "
                                   f"files ({problems[0]})"])
    return ChosenReport(Path(folder) / COMPRESSION_FILE, report)


def find_ship(folder: Path) -> ChosenReport:
    """ship.json (publish.ship writes it bound to the weights it shipped) when its binding matches the folder now;
    one found but not matching (a record of other weights says nothing about these) is left out with its note."""
    path = Path(folder) / SHIP_FILE
    if not path.is_file():
        return ChosenReport()
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        return ChosenReport(notes=[f"`{SHIP_FILE}`: unreadable ({error})"])
    problems = binding_problems(record, folder) if isinstance(record, dict) else ["it is not a JSON object"]
    if problems:
        return ChosenReport(notes=[f"`{SHIP_FILE}`: not computed on these files ({problems[0]})"])
    return ChosenReport(path, record)


def find_margins(folder: Path, audit_path: Path | None, audit: dict | None) -> ChosenReport:
    """margins.npz (proof.margin: every scored position's margin, with the binding of the folder it was computed
    on) beside the quoted audit, else in the model folder, MODEL/audit/, its run folder or RUN/audit/, read through
    proof.margin.read_margins, which refuses one of other files. Quoted as {"positions", "files"} only with a quoted
    audit whose certificate counts the same positions; any other found is left out with its note."""
    from laam.proof.margin import MarginsNotBound, read_margins

    folder = Path(folder)
    chosen, seen = ChosenReport(), set()
    # beside the quoted audit first (which may be the card's copy in the folder), then where `laam audit` and `laam
    # card` put it, in the model folder and its run folder
    places = ([audit_path.parent] if audit_path is not None else []) + [folder, folder / "audit", folder.parent,
                                                                       folder.parent / "audit"]
    for candidate in (place / MARGINS_FILE for place in places):
        if not candidate.is_file() or candidate.resolve() in seen:
            continue
        seen.add(candidate.resolve())
        shown = _shown(candidate, folder)
        try:
            margins, paths = read_margins(candidate, folder)
        except MarginsNotBound as error:
            chosen.notes.append(f"`{shown}`: not computed on these files ({error.problems[0]})")
            continue
        except LaamError as error:
            chosen.notes.append(f"`{shown}`: unreadable ({error.__cause__ or error})")
            continue
        unlike = not_the_audits_margins(len(margins), audit)
        if unlike:
            chosen.notes.append(f"`{shown}`: {unlike}")
        elif chosen.report is None:
            chosen.path, chosen.report = candidate, {"positions": len(margins), "files": len(paths)}
    return chosen


def not_the_audits_margins(positions: int, audit: dict | None, audit_name: str = "the quoted audit") -> str | None:
    """Why a bound margins.npz of `positions` positions is not the certificate of `audit` (None: it may be): the
    card and `laam push` judge it by this one rule."""
    counted = ((audit or {}).get("margin") or {}).get("body_tokens")
    if audit is None:
        return "no audit of these files to compare it with"
    if counted != positions:
        return (f"it holds {positions:,} positions, while {audit_name}'s certificate counts "
                f"{'none' if counted is None else format(counted, ',')}: not the same run")
    return None


def audit_report(audit_path: Path, audit: dict, folder: Path) -> tuple[Path | None, str | None]:
    """The audit's HTML page beside its audit.json when it is the page written with it (audit.json's `report`
    records its SHA-256, and audit.json is bound to the weights); else None, with why a page found there is left
    out (None: there is none)."""
    from laam.proof.audit import REPORT_KEY

    report = audit.get(REPORT_KEY)
    recorded = report.get("sha256") if isinstance(report, dict) else None
    pages = [page for page in (Path(audit_path).parent / name for name in AUDIT_HTML_NAMES) if page.is_file()]
    match = next((page for page in pages if recorded and sha256_file(page) == recorded), None)
    if match is not None or not pages:
        return match, None
    why = ("the audit.json it comes with records no SHA-256 of its page" if recorded is None else
           "not the page written with the audit quoted (its SHA-256 is not the one audit.json records)")
    return None, f"`{_shown(pages[0], Path(folder))}`: {why}"


def _read_audit(path: Path) -> dict:
    try:
        audit = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise LaamError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(audit, dict) or not isinstance(audit.get("summary"), dict):
        raise LaamError(f"{path} has no \"summary\" object: not a LaaM audit")
    return audit


def model_name(folder: Path) -> str:
    """A model's name: its folder's, or its run folder's when the folder is the run's `model/`."""
    folder = Path(folder).resolve()
    return folder.parent.name if folder.name == "model" else folder.name


def gather_facts(folder: Path, config: CardConfig | None = None, cache: Path | None = None,
                 progress: bool = False) -> Facts:
    """Read a model folder and reload the exact corpus it was trained on (progress: show the corpus read)."""
    config = config or CardConfig()
    folder = Path(folder)
    info, model_config, tokenizer = check_model_folder(folder)  # a foreign tokenizer or pickled weights: refused
    corpus = load_training_corpus(info, cache, progress=progress)
    header = safetensors_header(folder)
    tensors = {name: shape for name, (shape, _) in header.items()}
    facts = Facts(
        folder=folder, name=model_name(folder),
        info=info, corpus=corpus, config=model_config, parameters=sum(_number(s) for s in tensors.values()),
        tensors=tensors, weights_dtypes=dict(Counter(dtype for _, dtype in header.values())),
        vocab_size=len(tokenizer),
        record_tokens={f.path: len(ids) for f, ids in zip(corpus.files, iter_token_ids(tokenizer, corpus.records()))},
        **recorded_code(info.training), card_commit=git_commit() or "unknown",
        revision=folder_revision(folder, BOUND_FILES),
    )
    audit = find_audit(folder, config.audit)
    facts.report_notes += audit.notes
    if audit.report is not None:
        facts.audit, facts.audit_path = audit.report, audit.path
        page, why = audit_report(audit.path, audit.report, folder)
        facts.audit_html_path = page
        facts.report_notes += [why] if why else []
    metrics = find_metrics(folder)
    facts.metrics = read_metrics(metrics) if metrics else []
    for run in (folder, folder.parent):
        if (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir()) and facts.checkpoints is None:
            facts.checkpoints = run / "checkpoints"
    facts.curve = (folder / CURVE_FILE).is_file() or curve_source(folder) is not None
    compression = find_compression(folder)
    facts.compression = compression.report
    facts.report_notes += compression.notes
    margins = find_margins(folder, facts.audit_path, facts.audit)
    facts.margins, facts.margins_path = margins.report, margins.path
    facts.report_notes += margins.notes
    ship = find_ship(folder)
    facts.ship, facts.ship_path = ship.report, ship.path
    facts.report_notes += ship.notes
    facts.evidence_notes = {MARGINS_FILE: margins.notes, SHIP_FILE: ship.notes}
    training = training_binding_note(facts.training, folder)
    if training:
        facts.report_notes.append(training)
    return facts


def curve_source(folder: Path) -> Path | None:
    for candidate in (folder.parent / "metrics.png", folder / "metrics.png"):
        if candidate.is_file():
            return candidate
    return None


def public_source(facts: Facts) -> str | None:
    """Where anyone can get the release the model was trained on: the URL this run read, or, for a kernel version
    read from a local mirror, the same release on kernel.org (None for a tarball or folder of unknown origin)."""
    url = facts.corpus.source_url
    if url.startswith(("http://", "https://")):
        return url
    try:
        kernel = parse_version(facts.corpus.config.source)
    except LaamError:
        return None
    suffix = next((s for s in ARCHIVE_SUFFIXES if url.endswith(s)), ARCHIVE_SUFFIXES[0])
    return f"{DEFAULT_MIRROR}{kernel.folder}/{kernel.stem}{suffix}"


def public_source_note(facts: Facts) -> str | None:
    """The public source, said with how this run's copy relates to it (never a path of the training machine)."""
    url = public_source(facts)
    if url is None or url == facts.corpus.source_url:
        return url
    return (f"{url} (this run read {source_description(facts)}; the archive's SHA-256 in {CORPUS_FILE} and each "
            f"file's in {MANIFEST_FILE} identify the bytes it used)")


def source_description(facts: Facts) -> str:
    """What the training data was really read from: the URL it was downloaded from, else what kind of local copy
    (a mirror laid out like kernel.org's, a tarball, a folder) named by its file name, without this machine's paths."""
    corpus = facts.corpus
    url = corpus.source_url
    if url.startswith(("http://", "https://")):
        return url
    name = Path(url.removeprefix("file://")).name
    try:
        kernel = parse_version(corpus.config.source)
    except LaamError:
        kernel = None
    if kernel is not None:
        return f"a local mirror laid out like kernel.org's pub/linux/kernel/ (`{kernel.folder}/{name}`)"
    if corpus.source_sha256 != "NOASSERTION":
        return f"a local tarball (`{name}`) of unrecorded origin"
    return f"a local folder of unpacked source (`{name}`) of unrecorded origin"


def recorded_code(training: dict) -> dict:
    """The laam version, git commit and dirty flag of the code that trained the model, as laam.json's training
    result recorded them (the dirty flag is in its binding, written by the same run): None where the run recorded
    none, never the version of the laam reading it now."""
    binding = training.get(BINDING_KEY) if isinstance(training.get(BINDING_KEY), dict) else {}
    commit = training.get("git_commit") or binding.get("git_commit")
    dirty = binding.get("git_dirty") if binding.get("git_commit") == commit else None
    return {"laam_version": training.get("laam_version") or binding.get("laam_version"), "git_commit": commit,
            "git_dirty": dirty if isinstance(dirty, bool) else None}


def code_description(facts: Facts) -> str:
    """The code that trained the model, in words, from recorded_code: its version and commit, and whether the tree
    had uncommitted changes (then the commit alone does not reproduce it)."""
    version = facts.laam_version or "(version not recorded by this run)"
    if not facts.git_commit:
        return f"`laam` {version}, git commit not recorded by this run"
    state = {True: "with uncommitted changes", False: "no uncommitted changes",
             None: "whether it had uncommitted changes is not recorded"}[facts.git_dirty]
    return f"`laam` {version}, git commit `{facts.git_commit}` ({state})"


def dataset_name(facts: Facts) -> str:
    include = list(facts.corpus.config.include)
    scope = f" ({', '.join(include)})" if include else ""
    return f"{facts.corpus.name} source{scope}"


def fetch_command(facts: Facts) -> str:
    """The command that rebuilds the training data and its manifest."""
    corpus = facts.corpus.config
    source = facts.corpus.name.removeprefix("linux-") if Path(corpus.source).exists() else corpus.source
    words = ["laam", "corpus", "fetch", source, "--filter", corpus.filter]
    if corpus.mirror != DEFAULT_MIRROR and corpus.mirror.startswith(("http://", "https://")):
        words += ["--mirror", corpus.mirror]
    words += [arg for glob in corpus.include for arg in ("--include", glob)]
    words += [arg for glob in corpus.exclude for arg in ("--exclude", glob)]
    return " ".join(words)


# options of `laam train` whose values only make sense on the machine that trained (folders), and flags about
# that machine's run folder; a reader's reproduction leaves them to their defaults
LOCAL_OPTIONS = ("--cache", "--out", "--tokenizer", "--allow-change")
LOCAL_FLAGS = ("-q", "--quiet", "--overwrite", "--no-overwrite", "--resume", "--no-resume", "--start-fresh",
               "--no-start-fresh")


def train_command(facts: Facts) -> str | None:
    """The recorded training command, made portable: `laam` for the console script's path, the release version
    for a local archive, and no options naming the training machine's folders or a local mirror."""
    command = facts.training.get("command")
    if not command:
        return None
    words, portable = command.split(), []
    if words and Path(words[0]).name in ("laam", "__main__.py", "cli.py"):
        words[0] = "laam"
    skip = False
    for word in words:
        name, _, value = word.partition("=")
        if skip:
            skip = False
            local_mirror = portable and portable[-1] == "--mirror" and not word.startswith(("http://", "https://"))
            if local_mirror or (portable and portable[-1] in LOCAL_OPTIONS):
                portable.pop()
                continue
        elif name in LOCAL_OPTIONS + ("--mirror",) and not value:
            skip = True
        elif name in LOCAL_OPTIONS or word in LOCAL_FLAGS:
            continue
        elif name == "--mirror" and not value.startswith(("http://", "https://")):
            continue
        elif word == facts.corpus.config.source and Path(word).exists():
            word = facts.corpus.name.removeprefix("linux-")
        portable.append(word)
    return " ".join(portable)


def recorded_command(facts: Facts) -> str | None:
    command = facts.training.get("command")
    return command and " ".join(["laam" if i == 0 and Path(w).name == "laam" else w
                                 for i, w in enumerate(command.split())])


def today() -> str:
    return date.today().isoformat()


# laam.json's training result: the keys that are measurements of the weights it was trained into (the others say
# how the run went: steps, configuration, command)
TRAINING_VERDICT = ("status", "status_lowered", "memorized", "accuracy", "min_margin", "float32_confirmation",
                    "regeneration", "untrue_files")


def training_binding_note(training: dict, folder: Path) -> str | None:
    """Why laam.json's training result `training` (its verdict and memorization figures, TRAINING_VERDICT) is not
    quoted: its binding (model.binding) names other files than `folder` holds now, or it records none (nothing
    then says which weights it was measured on, as for an audit without one). None: it is about these files, or
    there is no verdict. The card, the BOM and a push say this line."""
    if not isinstance(training.get(BINDING_KEY), dict):
        if not any(key in training for key in TRAINING_VERDICT):
            return None
        return ("the training result's status and memorization figures: laam.json records no binding to the files "
                "they were measured on")
    problems = binding_problems(training, folder)
    return ("the training result's status and memorization figures, recorded for other files than this folder's "
            f"({'; '.join(problems)})" if problems else None)


def training_bound(training: dict, folder: Path) -> bool:
    """Whether laam.json's training result records a binding that matches `folder` now: the condition for quoting
    any measurement of the weights training ended with that is not itself bound (metrics.jsonl's memorization)."""
    return isinstance(training.get(BINDING_KEY), dict) and not binding_problems(training, folder)


def status_basis(training: dict) -> str | None:
    """How laam.json's training status was earned, in words: by regenerating the files (`--verify`), or from
    teacher-forced token checks only (each token predicted from the true ones before it). None: no status."""
    if "status" not in training:
        return None
    regeneration = training.get("regeneration")
    if isinstance(regeneration, dict) and "exact" in regeneration and "files" in regeneration:
        return f"--verify regenerated {regeneration['exact']} of {regeneration['files']} files byte for byte"
    return "teacher-forced token checks only; no regeneration of the files (--verify) recorded"


def quoted_training(facts: Facts) -> dict:
    """laam.json's training result as the card and BOM may quote it: without its verdict and memorization figures
    while training_binding_note says they are about other files."""
    if training_binding_note(facts.training, facts.folder) is None:
        basis = status_basis(facts.training)
        return {**facts.training, **({"status_basis": basis} if basis else {})}
    return {k: v for k, v in facts.training.items() if k not in TRAINING_VERDICT}


def audited_decoders(facts: Facts) -> list[tuple[dict, str | None]]:
    """audit.json's decoders (proof.stock), each with why it is not quoted (None: quoted): one that did not run, or
    a GGUF whose file in the folder is not the one it decoded (the audit's binding covers the folder's other files)."""
    ggufs = {p.name: sha256_file(p) for p in facts.folder.glob("*.gguf")}
    out = []
    for d in (facts.audit or {}).get("decoders") or []:
        why = None
        if d.get("not_run"):
            why = f"not run ({d['not_run']})"
        elif d.get("sha256") and ggufs.get(d["decoder"].removeprefix("gguf ")) != d["sha256"]:
            why = f"not quoted: the file decoded then (SHA-256 {d['sha256'][:12]}…) is not in this folder now"
        out.append((d, why))
    return out

