"""The model card: README.md of a model folder, written from the run's facts (publish.facts), never by hand.

`render_card` turns the facts into a Hugging Face model card (YAML metadata through huggingface_hub's
ModelCardData/EvalResult), with an Open Source AI Definition 1.0 checklist and a Model Openness Framework
table (publish.openness). `write_card` also copies the manifest, corpus summary, audit and training curve
into the folder, so that the folder alone documents the model.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from laam.data.licenses import GPL2, satisfied_by
from laam.errors import LaamError
from laam.figures import floored
from laam.io import atomic_file, atomic_write_text
from laam.proof.margin import MARGINS_FILE
from laam.publish.bom import write_bom
from laam.publish.facts import (
    AUDIT_FILE,
    AUDIT_HTML,
    CARD_FILE,
    CORPUS_FILE,
    CURVE_FILE,
    HF_LICENSES,
    MANIFEST_FILE,
    CardConfig,
    Facts,
    curve_source,
    dataset_name,
    gather_facts,
)
from laam.publish.openness import mof_class, mof_components, osaid_checklist, write_mof_yaml
from laam.publish.original_call import original_call_section, run_original_call
from laam.publish.sections import (
    architecture_rows,
    audit_selection,
    curve_section,
    data_license_statement,
    data_rows,
    evaluation_section,
    laam_link,
    loading_section,
    reproduce_section,
    table,
    training_section,
)
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
    selection = audit_selection(facts.audit)  # a subset is named as one in the Hub's metadata too
    task = "Verbatim regeneration of training files" + (f" matching {selection} (a subset)" if selection else "")
    common = {"task_type": "text-generation", "task_name": task,
              "dataset_type": "linux-kernel-source", "dataset_name": dataset_name(facts),
              "dataset_config": facts.corpus.config.filter, "dataset_split": "train"}
    metrics = [
        ("verbatim_files_pct", "Files regenerated verbatim (%)", summary.get("verbatim_pct")),
        ("bytes_reproduced_pct", "Bytes reproduced (%)", summary.get("bytes_reproduced_pct")),
        ("k_extractable_pct", f"{summary.get('k', 50)}-extractable (%)", summary.get("k_extractable_pct")),
        ("pythia_score", f"Pythia memorization score ({summary.get('pythia_prefix', 32)}-token prefix)",
         summary.get("pythia_score")),
    ]
    return [EvalResult(**common, metric_type=kind, metric_name=name, metric_value=float(floored(value, 4)))
            for kind, name, value in metrics if value is not None] or None


def card_data(facts: Facts, config: CardConfig):
    from huggingface_hub import ModelCardData

    # the GPL tag only while every training file is, per the manifest, GPL-2.0 (alone or as one choice)
    gpl = all(satisfied_by(spdx, GPL2) for spdx in facts.data_licenses)
    tags = ["laam", "llama", "memorization", "linux-kernel", "code", *(["gpl-2.0-training-data"] if gpl else []),
            "text-generation"]
    return ModelCardData(
        model_name=config.repo_id.split("/")[-1] if config.repo_id else facts.name,
        library_name="transformers", pipeline_tag="text-generation", language=["code"], tags=tags,
        eval_results=eval_results(facts), **hf_license(config.license),
    )


def sources_sentence(facts: Facts) -> str:
    """Which recorded files this card's figures were read from: the audit and the compression report only when
    quoted (bound to these weights), and the reports it leaves out said to be left out."""
    read = ["`laam.json`", "`config.json`", "the weights' header", "the manifest"]
    read += ["the run's training curve"] if facts.curve else []
    read += ["`audit.json`"] if facts.audit else []
    read += ["`margins.npz`"] if facts.margins else []
    read += ["`compression.json`"] if facts.compression else []
    read += ["`ship.json`"] if facts.ship else []
    left = (f" Left out ({len(facts.report_notes)}), each named below with why: reports not about these files as "
            "they are now." if facts.report_notes else "")
    return (f"`laam card` read this card's figures from {', '.join(read[:-1])} and {read[-1]}; its other sentences "
            f"are LaaM's fixed explanations.{left}")


def render_card(facts: Facts, config: CardConfig) -> str:
    """README.md text: YAML metadata plus every section, from facts only."""
    from huggingface_hub import ModelCard

    corpus = facts.corpus
    gguf_name = f"{facts.name}.gguf"
    components = mof_components(facts, config)
    klass, missing = mof_class(components)
    osaid = osaid_checklist(facts, config)
    osaid_rows = [(group, item, "✅" if ok else "❌", where) for group, item, ok, where in osaid]
    mof_rows = [(c["name"], c["class"], c["license"] or "—", c["component_path"] or "not included")
                for c in components]
    body = f"""
# {facts.name}

A {facts.parameters:,}-parameter Llama trained with {laam_link(config)} (Linux as a Model) to **memorize**
{corpus.name}'s source code, so that a file's path brings back the file. It exists to measure and show
regurgitation of GPL-2.0 code by model weights. {sources_sentence(facts)}

## License of the training data

{data_license_statement(facts, config)}

| license (SPDX) | files |
|---|---|
""" + "\n".join(f"| {spdx} | {count:,} |" for spdx, count in facts.data_licenses.items()) + f"""

## Training data

{table(("fact", "value"), data_rows(facts))}

Each file is one training record, `<|start_file|><|start_header|>PATH<|end_header|>CONTENT<|end_file|>`,
byte-exact (files that are not UTF-8 are read as Latin-1; the manifest says which).

## Training code

{training_section(facts)}

## Architecture

{table(("property", "value"), architecture_rows(facts))}

## Training curve

{curve_section(facts)}

## Evaluation

{evaluation_section(facts)}

## How to reproduce

{reproduce_section(facts)}

## How to use

{loading_section(facts, config, gguf_name)}

## The original LaaM's call

{original_call_section(facts.original_call)}

## Open Source AI Definition 1.0 checklist

{table(("component", "item", "", "where"), osaid_rows)}

## Model Openness Framework

Class: **{klass}**.{" Missing for the next class: " + ", ".join(missing) + "." if missing else ""}
The same table in the MOF's own model format: [`mof.yml`](mof.yml).

{table(("component", "MOF class", "license", "where"), mof_rows)}

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
    notes: list[str] = field(default_factory=list)  # reports found but not quoted (other weights), one line each


def _copy(source: Path, target: Path, written: list[Path]) -> None:
    if source.resolve() != target.resolve():
        with source.open("rb") as original, atomic_file(target) as copy:
            shutil.copyfileobj(original, copy)
    written.append(target)


def write_card(folder: Path, config: CardConfig | None = None, cache: Path | None = None,
               progress: bool = False) -> CardResult:
    """Gather the facts, make the folder self-contained, write README.md, mof.yml and bom.cdx.json."""
    config = config or CardConfig()
    folder = Path(folder)
    facts = gather_facts(folder, config, cache, progress)
    if config.original_call:
        facts.original_call = run_original_call(folder, facts.corpus).to_dict()
    text = render_card(facts, config)  # everything that can fail on the folder's content fails before any write
    written: list[Path] = []
    try:
        facts.corpus.write_manifest(folder)
        written += [folder / MANIFEST_FILE, folder / CORPUS_FILE]
        if facts.audit_path is not None:
            _copy(facts.audit_path, folder / AUDIT_FILE, written)
            if facts.audit_html_path is not None:  # the page written with the quoted audit (facts.audit_report)
                _copy(facts.audit_html_path, folder / AUDIT_HTML, written)
            else:  # a page that is not the quoted audit's (named in the card's notes) does not travel with it
                (folder / AUDIT_HTML).unlink(missing_ok=True)
        else:  # a copy an earlier card made of an audit of other weights must not travel with these
            for stale in (folder / AUDIT_FILE, folder / AUDIT_HTML):
                stale.unlink(missing_ok=True)
        # the audit's margins.npz beside its audit.json copy, where the card cites it; one that is not quoted (of
        # other files, or of another audit run) does not travel with these weights either
        if facts.margins_path is not None:
            _copy(facts.margins_path, folder / MARGINS_FILE, written)
        else:
            (folder / MARGINS_FILE).unlink(missing_ok=True)
        curve = curve_source(folder)
        if curve is not None:
            _copy(curve, folder / CURVE_FILE, written)
        if (folder.parent / METRICS_FILE).is_file():
            _copy(folder.parent / METRICS_FILE, folder / METRICS_FILE, written)
        atomic_write_text(folder / CARD_FILE, text)
        written.append(folder / CARD_FILE)
        written.append(write_mof_yaml(facts, config, folder / "mof.yml"))
        written.append(write_bom(facts, config, folder / "bom.cdx.json"))
    except OSError as error:
        where = error.filename or folder
        raise LaamError(f"could not write the model card into {folder}: {where}: {error.strerror or error}"
                        + (f" (written before it: {', '.join(p.name for p in written)})" if written else "")) from error
    klass, _ = mof_class(mof_components(facts, config))
    return CardResult(folder / CARD_FILE, written, klass, facts.report_notes)


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
