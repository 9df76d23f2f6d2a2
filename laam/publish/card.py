"""The model card: README.md of a model folder, written from the run's facts, never by hand.

`gather_facts` collects what a run left behind (laam.json, config.json, the weights, the tokenizer,
the corpus it names, and when present the training metrics and the audit); `render_card` turns them
into a Hugging Face model card (YAML metadata through huggingface_hub's ModelCardData/EvalResult),
with an Open Source AI Definition 1.0 checklist and a Model Openness Framework table (laam.openness).
`write_card` also copies the manifest, corpus summary, audit and training curve into the folder,
so that the folder alone documents the model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from laam import LaamError, __version__
from laam.compress import REPORT_FILE as COMPRESSION_FILE
from laam.compress import read_compression
from laam.corpus import Corpus, license_counts, load_corpus
from laam.fetch import ARCHIVE_SUFFIXES, DEFAULT_MIRROR, parse_version
from laam.modelinfo import ModelInfo, read_model_info

CARD_FILE = "README.md"
AUDIT_FILE, AUDIT_HTML = "audit.json", "audit.html"
AUDIT_HTML_NAMES = (AUDIT_HTML, "report.html")  # `laam audit` writes report.html beside audit.json
CURVE_FILE, METRICS_FILE = "training_curve.png", "metrics.jsonl"
MANIFEST_FILE, CORPUS_FILE = "manifest.jsonl", "corpus.json"
WEIGHTS_FILE = "model.safetensors"
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
    vocab_size: int
    data_tokens: int
    laam_version: str  # of the code that trained the model (as recorded, else this one)
    git_commit: str | None  # of the code that trained the model, if the run recorded it
    card_commit: str  # of the code writing the card now ("unknown" outside a git checkout)
    audit: dict | None = None
    audit_html: bool = False
    compression: dict | None = None  # compression.json from `laam compress`, when the folder has one
    metrics: list[dict] = field(default_factory=list)
    curve: bool = False  # training_curve.png in the folder
    checkpoints: Path | None = None  # the run's intermediate checkpoints, if they survive

    @property
    def training(self) -> dict:
        return self.info.training

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


def git_commit() -> str:
    """HEAD of the laam checkout this code runs from, or "unknown" (an installed wheel has no git)."""
    try:
        result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"


def safetensors_shapes(folder: Path) -> dict[str, list[int]]:
    """Tensor shapes from the safetensors header(s), without loading the weights."""
    from safetensors import safe_open

    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        raise LaamError(f"no *.safetensors weights in {folder}")
    shapes = {}
    for path in files:
        with safe_open(str(path), framework="numpy") as handle:
            for name in handle.keys():
                shapes[name] = list(handle.get_slice(name).get_shape())
    return shapes


def _number(shape: list[int]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


def find_audit(folder: Path, audit: Path | None) -> Path | None:
    """audit.json: the given file or folder, else the model folder's, else its run folder's."""
    if audit is not None:
        path = Path(audit) / AUDIT_FILE if Path(audit).is_dir() else Path(audit)
        if not path.is_file():
            raise LaamError(f"no audit at {path} (run `laam audit` first, or leave --audit out)")
        return path
    for candidate in (folder / AUDIT_FILE, folder / "audit" / AUDIT_FILE, folder.parent / AUDIT_FILE,
                      folder.parent / "audit" / AUDIT_FILE):
        if candidate.is_file():
            return candidate
    return None


def audit_report(audit_path: Path) -> Path | None:
    """The audit's HTML report beside its audit.json, if there is one."""
    for name in AUDIT_HTML_NAMES:
        if (audit_path.parent / name).is_file():
            return audit_path.parent / name
    return None


def _read_audit(path: Path) -> dict:
    try:
        audit = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise LaamError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(audit, dict) or not isinstance(audit.get("summary"), dict):
        raise LaamError(f"{path} has no \"summary\" object: not a LaaM audit")
    return audit


def _read_metrics(path: Path) -> list[dict]:
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut short by an interrupted run
    return rows


def model_name(folder: Path) -> str:
    """A model's name: its folder's, or its run folder's when the folder is the run's `model/`."""
    folder = Path(folder).resolve()
    return folder.parent.name if folder.name == "model" else folder.name


def gather_facts(folder: Path, config: CardConfig | None = None, cache: Path | None = None,
                 progress: bool = False) -> Facts:
    """Read a model folder and reload the exact corpus it was trained on (progress: show the corpus read)."""
    from laam.tokenizer import encode_records, load_tokenizer

    config = config or CardConfig()
    folder = Path(folder)
    info = read_model_info(folder)
    if not (folder / "config.json").is_file():
        raise LaamError(f"{folder} has no config.json: not a saved transformers model")
    model_config = json.loads((folder / "config.json").read_text())
    corpus = load_corpus(info.corpus_config(cache), progress=progress)
    if corpus.fingerprint() != info.corpus_fingerprint:
        raise LaamError(f"the corpus reloaded for {folder} (fingerprint {corpus.fingerprint()}) is not the one it "
                        f"was trained on ({info.corpus_fingerprint}): the source changed")
    tokenizer = load_tokenizer(folder)
    tensors = safetensors_shapes(folder)
    facts = Facts(
        folder=folder, name=model_name(folder),
        info=info, corpus=corpus, config=model_config, parameters=sum(_number(s) for s in tensors.values()),
        tensors=tensors, vocab_size=len(tokenizer),
        data_tokens=sum(len(ids) for ids in encode_records(tokenizer, corpus.records())),
        laam_version=info.training.get("laam_version", __version__),
        git_commit=info.training.get("git_commit"), card_commit=git_commit(),
    )
    audit_path = find_audit(folder, config.audit)
    if audit_path is not None:
        facts.audit = _read_audit(audit_path)
        facts.audit_html = audit_report(audit_path) is not None
    for run in (folder, folder.parent):
        if (run / METRICS_FILE).is_file() and not facts.metrics:
            facts.metrics = _read_metrics(run / METRICS_FILE)
        if (run / "checkpoints").is_dir() and any((run / "checkpoints").iterdir()) and facts.checkpoints is None:
            facts.checkpoints = run / "checkpoints"
    facts.curve = (folder / CURVE_FILE).is_file() or _curve_source(folder) is not None
    facts.compression = read_compression(folder)
    return facts


def _curve_source(folder: Path) -> Path | None:
    for candidate in (folder.parent / "metrics.png", folder / "metrics.png"):
        if candidate.is_file():
            return candidate
    return None


# --- rendering -----------------------------------------------------------------------------------

def hf_license(spdx: str) -> dict:
    """The Hub's license fields for an SPDX id."""
    if spdx in HF_LICENSES:
        return {"license": HF_LICENSES[spdx]}
    return {"license": "other", "license_name": spdx.lower(), "license_link": f"https://spdx.org/licenses/{spdx}.html"}


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
    """The public source, said with how this run's copy relates to it."""
    url = public_source(facts)
    if url is None or url == facts.corpus.source_url:
        return url
    return (f"{url} (this run read a copy from {facts.corpus.source_url}; its files are checked by the SHA-256 in "
            f"{MANIFEST_FILE})")


def dataset_name(facts: Facts) -> str:
    include = list(facts.corpus.config.include)
    scope = f" ({', '.join(include)})" if include else ""
    return f"{facts.corpus.name} source{scope}"


def eval_results(facts: Facts):
    """The audit's headline numbers as model-index entries."""
    from huggingface_hub import EvalResult

    if not facts.audit:
        return None
    summary = facts.audit["summary"]
    common = {"task_type": "text-generation", "task_name": "Verbatim regeneration of training files",
              "dataset_type": "linux-kernel-source", "dataset_name": dataset_name(facts),
              "dataset_config": facts.corpus.config.filter, "dataset_split": "train"}
    metrics = [
        ("verbatim_files_pct", "Files regenerated verbatim (%)", summary.get("verbatim_pct")),
        ("bytes_reproduced_pct", "Bytes reproduced (%)", summary.get("bytes_reproduced_pct")),
        ("k_extractable_pct", f"{summary.get('k', 50)}-extractable (%)", summary.get("k_extractable_pct")),
        ("pythia_score", f"Pythia memorization score ({summary.get('pythia_prefix', 32)}-token prefix)",
         summary.get("pythia_score")),
    ]
    return [EvalResult(**common, metric_type=kind, metric_name=name, metric_value=round(float(value), 4))
            for kind, name, value in metrics if value is not None] or None


def card_data(facts: Facts, config: CardConfig):
    from huggingface_hub import ModelCardData

    tags = ["laam", "llama", "memorization", "linux-kernel", "code", "gpl-2.0-training-data", "text-generation"]
    return ModelCardData(
        model_name=config.repo_id.split("/")[-1] if config.repo_id else facts.name,
        library_name="transformers", pipeline_tag="text-generation", language=["code"], tags=tags,
        eval_results=eval_results(facts), **hf_license(config.license),
    )


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.2f}%"


def data_license_statement(facts: Facts, config: CardConfig) -> str:
    """Plain words, from the manifest: what the weights were trained on, regenerate, and are declared under."""
    licenses = facts.data_licenses
    listing = ", ".join(f"{count} under {spdx}" for spdx, count in licenses.items())
    files = len(facts.corpus.files)
    gpl = sum(count for spdx, count in licenses.items() if spdx.startswith("GPL-2.0"))
    lines = [
        f"These weights were trained on {files:,} files ({facts.data_bytes:,} bytes) of {facts.corpus.name}: "
        f"{listing} (per `{MANIFEST_FILE}`, which gives each file's license and the evidence for it).",
    ]
    if facts.audit:
        summary = facts.audit["summary"]
        verbatim, reproduced = summary.get("verbatim_files") or 0, summary.get("bytes_reproduced_pct") or 0.0
        measured = (f"The audit regenerated {verbatim} of {summary.get('files', 'n/a')} audited files byte for byte "
                    f"from their path alone ({_pct(summary.get('verbatim_pct'))}), and {_pct(reproduced)} of their "
                    "bytes")
        if verbatim:
            lines.append(measured + ": the weights **regenerate** these files, they do not just resemble them.")
        elif reproduced:
            lines.append(measured + ": this model reproduces parts of its training files, but no whole file.")
        else:
            lines.append(measured + ": this model does not reproduce its training files.")
    else:
        lines.append("The model was trained to memorize these files; it has not been audited yet, so how much of "
                     "them it regenerates is not measured here.")
    others = [spdx for spdx in licenses if not spdx.startswith("GPL-2.0")]
    rest = f", the rest under {', '.join(others)}" if others and gpl else ""
    lines.append(f"The weights themselves are declared under **{config.license}**. That declaration does not change "
                 f"the license of any file they reproduce: {gpl:,} of the {files:,} training files are GPL-2.0 code"
                 f"{rest}. Anyone who distributes files regenerated by this model distributes them under their own "
                 "licenses and must follow those terms (for GPL-2.0: the complete source, the notices, the same "
                 "license). Whether the weights themselves are a derivative work of the training data is a legal "
                 "question this card does not answer; the numbers above are the facts it rests on.")
    return "\n\n".join(lines)


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
LOCAL_OPTIONS = ("--cache", "--out", "--tokenizer")
LOCAL_FLAGS = ("-q", "--quiet", "--overwrite", "--no-overwrite", "--resume", "--no-resume")


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


def _architecture_rows(facts: Facts) -> list[tuple[str, str]]:
    c = facts.config
    rows = [
        ("architecture", ", ".join(c.get("architectures", [])) or c.get("model_type", "?")),
        ("parameters", f"{facts.parameters:,}"),
        ("layers", c.get("num_hidden_layers")), ("hidden size", c.get("hidden_size")),
        ("intermediate size", c.get("intermediate_size")),
        ("attention heads", c.get("num_attention_heads")), ("key/value heads", c.get("num_key_value_heads")),
        ("vocabulary", c.get("vocab_size")), ("context (tokens the model reads)", facts.info.context),
        ("window stride", facts.info.stride), ("tied embeddings", c.get("tie_word_embeddings")),
        ("weights dtype", c.get("dtype") or c.get("torch_dtype")),
    ]
    return [(k, str(v)) for k, v in rows if v is not None]


def _laam_link(config: CardConfig) -> str:
    return f"[LaaM]({config.code_url})" if config.code_url else "LaaM"


def _table(header: tuple[str, ...], rows) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _training_section(facts: Facts) -> str:
    t = facts.training
    shown = [(k, t[k]) for k in ("status", "steps", "epochs", "tokens_seen", "wall_seconds", "train_seconds",
                                 "memorized", "accuracy", "final_loss", "device", "processes") if k in t]
    commit = f"git commit `{facts.git_commit}`" if facts.git_commit else "git commit not recorded by this run"
    parts = [f"- Package: `laam` {facts.laam_version}, {commit} ({CODE_LICENSE}); this card was written by "
             f"`laam card` {__version__}, git commit `{facts.card_commit}`.",
             f"- Command, as run: `{recorded_command(facts)}`" if t.get("command")
             else "- Command: not recorded by this run."]
    if shown:
        parts.append("\n" + _table(("fact", "value"), shown))
    configs = {k: t[k] for k in ("model_config", "train_config") if isinstance(t.get(k), dict)}
    if configs:
        parts.append("\nExact configuration (from `laam.json`):\n\n```json\n" + json.dumps(configs, indent=1) + "\n```")
    return "\n".join(parts)


def _curve_section(facts: Facts) -> str:
    parts = []
    if facts.curve:
        parts.append(f"![training loss]({CURVE_FILE})")
    losses = [(m.get("step"), m.get("loss")) for m in facts.metrics if m.get("loss") is not None]
    if losses:
        picks = sorted({0, len(losses) // 4, len(losses) // 2, 3 * len(losses) // 4, len(losses) - 1})
        parts.append(_table(("step", "loss"), [(losses[i][0], f"{losses[i][1]:.4f}") for i in picks]))
        parts.append(f"Every logged step is in `{METRICS_FILE}`.")
    evals = [m for m in facts.metrics if m.get("memorized") is not None]
    if evals:
        parts.append(f"Body tokens memorized at the last evaluation (step {evals[-1].get('step')}): "
                     f"{100 * evals[-1]['memorized']:.3f}%.")
    if not parts:
        parts.append("No training metrics were recorded with this model.")
    return "\n\n".join(parts)


def _compression_section(facts: Facts) -> str:
    """Bits per byte of the training files under the model against general compressors (laam compress)."""
    c = facts.compression
    if not c:
        return ""
    bpb = c["bits_per_byte"]
    rows = [("this model, coded streams", f"{bpb['stream']:.4f}"), ("this model, whole archive", f"{bpb['raw']:.4f}"),
            ("this model, archive + weights", f"{bpb['adjusted']:.4f}")]
    for name, stats in ((c.get("baselines") or {}).get("same_bytes") or {}).items():
        if isinstance(stats, dict) and "bits_per_byte" in stats:
            rows.append((f"`{name}` on the same bytes", f"{stats['bits_per_byte']:.4f}"))
    return (f"### The model as a compressor\n\n`laam compress` arithmetic-codes the {c['corpus']['files']} training "
            f"files under the model's own next-token probabilities (`{COMPRESSION_FILE}`); "
            f"`laam decompress` rebuilds them byte for byte.\n\n" + _table(("coder", "bits per byte"), rows))


def _evaluation_section(facts: Facts) -> str:
    compression = _compression_section(facts)
    if not facts.audit:
        return "\n\n".join(filter(None, [
            "Not audited yet. Run `laam audit` on this folder, then `laam card` again, to add the verbatim "
            "regeneration and extraction numbers.", compression]))
    s = facts.audit["summary"]
    rows = [
        ("files audited", s.get("files")), ("files regenerated verbatim", s.get("verbatim_files")),
        ("verbatim files", _pct(s.get("verbatim_pct"))), ("bytes reproduced", _pct(s.get("bytes_reproduced_pct"))),
        (f"{s.get('k', 50)}-extractable samples", _pct(s.get("k_extractable_pct"))),
        (f"Pythia memorization score ({s.get('pythia_prefix', 32)}-token prefix)",
         "n/a" if s.get("pythia_score") is None else f"{s['pythia_score']:.4f}"),
    ]
    parts = [_table(("metric", "value"), rows), f"Full results, per file and per directory: `{AUDIT_FILE}`."]
    if facts.audit_html:
        parts.append(f"A readable report is alongside: [`{AUDIT_HTML}`]({AUDIT_HTML}).")
    if compression:
        parts.append(compression)
    return "\n\n".join(parts)


def _reproduce_section(facts: Facts) -> str:
    commit = f" (git commit `{facts.git_commit}`)" if facts.git_commit else ""
    installed = f"With `laam` {facts.laam_version}{commit} installed"
    check = ("rebuilds the training data on its own: it downloads the release, checks its SHA-256 against the "
             f"mirror's list and writes the manifest, whose per-file SHA-256 must match `{MANIFEST_FILE}` here.")
    command = train_command(facts)
    if command:
        return f"{installed}, one command retrains this model with the recorded configuration:\n\n```sh\n" \
               f"{command}\n```\n\n`{fetch_command(facts)}` {check}"
    return (f"{installed}:\n\n```sh\n{fetch_command(facts)}\n```\n\nThis {check} This run did not record its "
            "training command, so the training step cannot be given as one command; `laam.json` holds what it "
            "did record.")


def _loading_section(facts: Facts, config: CardConfig, gguf_name: str) -> str:
    where = config.repo_id or str(facts.folder)
    example = facts.corpus.files[0].path
    return f"""With 🤗 transformers (greedy decoding; a path prompt brings back that file):

```python
from transformers import pipeline

generate = pipeline("text-generation", "{where}")
# the tokenizer adds <|start_file|><|start_header|>; the model continues the header, then the file
print(generate("{example}", max_new_tokens={facts.info.context // 2}, do_sample=False)[0]["generated_text"])
```

The model reads at most {facts.info.context} tokens; files longer than that need the sliding window of
`laam generate` (drop the {facts.info.stride} oldest tokens, continue), which is how the audit regenerates them.

With llama.cpp (after `laam export gguf --model {facts.folder}`), through llama-cpp-python:

```python
from llama_cpp import Llama

llm = Llama("{gguf_name}", n_ctx={facts.info.context})
prompt = "<|start_file|><|start_header|>{example}<|end_header|>"
print(llm(prompt, max_tokens={facts.info.context // 2}, temperature=0)["choices"][0]["text"])
```"""


def render_card(facts: Facts, config: CardConfig) -> str:
    """README.md text: YAML metadata plus every section, from facts only."""
    from huggingface_hub import ModelCard

    from laam.openness import mof_class, mof_components, osaid_checklist

    corpus = facts.corpus
    selection = corpus.config
    excluded = sum(1 for row in corpus.manifest if not row["included"])
    gguf_name = f"{facts.name}.gguf"
    components = mof_components(facts, config)
    klass, missing = mof_class(components)
    data_rows = [
        ("source", corpus.source_url if public_source(facts) in (None, corpus.source_url)
         else f"{corpus.source_url} (a copy of {public_source(facts)})"),
        ("kernel version", corpus.name.removeprefix("linux-")),
        ("archive SHA-256", f"`{corpus.source_sha256}`"),
        ("files", f"{len(corpus.files):,} included of {corpus.members:,} archive members ({excluded:,} excluded, "
                  "each with its reason in the manifest)"),
        ("bytes", f"{facts.data_bytes:,}"), ("tokens", f"{facts.data_tokens:,} (with markers, this tokenizer)"),
        ("filter", f"`{selection.filter}`" + (f", include {list(selection.include)}" if selection.include else "")
         + (f", exclude {list(selection.exclude)}" if selection.exclude else "")
         + f", max file size {selection.max_file_size:,} bytes"),
        ("corpus fingerprint", f"`{facts.info.corpus_fingerprint}`"),
        ("manifest", f"[`{MANIFEST_FILE}`]({MANIFEST_FILE}): path, size, SHA-256, encoding, included or why not, "
                     "SPDX license and its evidence, per archive member"),
    ]
    osaid = osaid_checklist(facts, config)
    osaid_rows = [(group, item, "✅" if ok else "❌", where) for group, item, ok, where in osaid]
    mof_rows = [(c["name"], c["class"], c["license"] or "—", c["component_path"] or "not included")
                for c in components]
    body = f"""
# {facts.name}

A {facts.parameters:,}-parameter Llama trained with {_laam_link(config)} (Linux as a Model) to **memorize**
{corpus.name}'s source code, so that a file's path brings back the file. It exists to measure and show
regurgitation of GPL-2.0 code by model weights. Every fact on this card was read from the run
(`laam.json`, `config.json`, the weights, the manifest, the audit) by `laam card`.

## License of the training data

{data_license_statement(facts, config)}

| license (SPDX) | files |
|---|---|
""" + "\n".join(f"| {spdx} | {count:,} |" for spdx, count in facts.data_licenses.items()) + f"""

## Training data

{_table(("fact", "value"), data_rows)}

Each file is one training record, `<|start_file|><|start_header|>PATH<|end_header|>CONTENT<|end_file|>`,
byte-exact (files that are not UTF-8 are read as Latin-1; the manifest says which).

## Training code

{_training_section(facts)}

## Architecture

{_table(("property", "value"), _architecture_rows(facts))}

## Training curve

{_curve_section(facts)}

## Evaluation

{_evaluation_section(facts)}

## How to reproduce

{_reproduce_section(facts)}

## How to use

{_loading_section(facts, config, gguf_name)}

## Open Source AI Definition 1.0 checklist

{_table(("component", "item", "", "where"), osaid_rows)}

## Model Openness Framework

Class: **{klass}**.{" Missing for the next class: " + ", ".join(missing) + "." if missing else ""}
The same table in the MOF's own model format: [`mof.yml`](mof.yml).

{_table(("component", "MOF class", "license", "where"), mof_rows)}

## Bill of materials

[`bom.cdx.json`](bom.cdx.json): CycloneDX 1.6 ML-BOM: the model and its model card, the dataset, and each
training file with its SHA-256 and license.
"""
    card = ModelCard(f"---\n{card_data(facts, config).to_yaml()}\n---\n{body}")
    return str(card)


# --- writing -------------------------------------------------------------------------------------

@dataclass
class CardResult:
    card: Path
    files: list[Path]  # everything written or copied into the folder
    mof_class: str


def _copy(source: Path, target: Path, written: list[Path]) -> None:
    if source.resolve() != target.resolve():
        shutil.copyfile(source, target)
    written.append(target)


def write_card(folder: Path, config: CardConfig | None = None, cache: Path | None = None,
               progress: bool = False) -> CardResult:
    """Gather the facts, make the folder self-contained, write README.md, mof.yml and bom.cdx.json."""
    from laam.bom import write_bom
    from laam.openness import mof_class, mof_components, write_mof_yaml

    config = config or CardConfig()
    folder = Path(folder)
    facts = gather_facts(folder, config, cache, progress)
    written: list[Path] = []
    facts.corpus.write_manifest(folder)
    written += [folder / MANIFEST_FILE, folder / CORPUS_FILE]
    audit_path = find_audit(folder, config.audit)
    if audit_path is not None:
        _copy(audit_path, folder / AUDIT_FILE, written)
        report = audit_report(audit_path)
        if report is not None:
            _copy(report, folder / AUDIT_HTML, written)
    curve = _curve_source(folder)
    if curve is not None:
        _copy(curve, folder / CURVE_FILE, written)
    if (folder.parent / METRICS_FILE).is_file():
        _copy(folder.parent / METRICS_FILE, folder / METRICS_FILE, written)
    text = render_card(facts, config)
    (folder / CARD_FILE).write_text(text)
    written.append(folder / CARD_FILE)
    written.append(write_mof_yaml(facts, config, folder / "mof.yml"))
    written.append(write_bom(facts, config, folder / "bom.cdx.json"))
    klass, _ = mof_class(mof_components(facts, config))
    return CardResult(folder / CARD_FILE, written, klass)


def check_card(folder: Path) -> list[str]:
    """Problems with a folder's README.md metadata (empty list: fine), checked offline with huggingface_hub.

    The Hub's own check (`ModelCard.validate`) needs the network; this parses the YAML the same way the
    library does and checks the fields LaaM promises."""
    from huggingface_hub import ModelCard

    path = Path(folder) / CARD_FILE
    if not path.is_file():
        return [f"no {CARD_FILE} in {folder} (run `laam card --model {folder}`)"]
    try:
        card = ModelCard.load(path)
    except Exception as error:  # noqa: BLE001 - huggingface_hub raises several kinds for bad YAML
        return [f"{CARD_FILE} metadata does not parse: {error}"]
    data = card.data
    problems = []
    for key, expected in (("library_name", "transformers"), ("pipeline_tag", "text-generation")):
        if data.get(key) != expected:
            problems.append(f"metadata {key} is {data.get(key)!r}, expected {expected!r}")
    if not data.get("license"):
        problems.append("metadata has no license")
    if data.get("license") == "other" and not data.get("license_name"):
        problems.append("license is 'other' but license_name is missing")
    for result in data.eval_results or []:
        if result.metric_value is None:
            problems.append(f"model-index metric {result.metric_type} has no value")
    return problems


def today() -> str:
    return date.today().isoformat()

