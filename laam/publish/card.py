"""The model card: README.md of a model folder, written from the run's facts (publish.facts), never by hand.

`render_card` turns the facts into a Hugging Face model card (YAML metadata through huggingface_hub's
ModelCardData/EvalResult), with an Open Source AI Definition 1.0 checklist and a Model Openness Framework
table (publish.openness). `write_card` also copies the manifest, corpus summary, audit and training curve
into the folder, so that the folder alone documents the model.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from laam import __version__
from laam.proof.compress.run import REPORT_FILE as COMPRESSION_FILE
from laam.publish.bom import write_bom
from laam.publish.facts import (
    AUDIT_FILE,
    AUDIT_HTML,
    CARD_FILE,
    CODE_LICENSE,
    CORPUS_FILE,
    CURVE_FILE,
    HF_LICENSES,
    MANIFEST_FILE,
    CardConfig,
    Facts,
    audit_report,
    curve_source,
    dataset_name,
    fetch_command,
    find_audit,
    gather_facts,
    public_source,
    recorded_command,
    train_command,
)
from laam.publish.openness import mof_class, mof_components, osaid_checklist, write_mof_yaml
from laam.train.metrics import METRICS_FILE


def hf_license(spdx: str) -> dict:
    """The Hub's license fields for an SPDX id."""
    if spdx in HF_LICENSES:
        return {"license": HF_LICENSES[spdx]}
    return {"license": "other", "license_name": spdx.lower(), "license_link": f"https://spdx.org/licenses/{spdx}.html"}


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
    curve = curve_source(folder)
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
