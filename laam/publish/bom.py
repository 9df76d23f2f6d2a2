"""The AI bill of materials: a CycloneDX 1.6 ML-BOM of a model folder.

The model (with its CycloneDX model card), the dataset it was trained on (with its data
description), one component per training file (SHA-256 and SPDX license, from the manifest), and
the libraries that made and run it. cyclonedx-python-lib writes and validates the document; it
has no classes yet for 1.6's `modelCard` and component `data` fields (commented out in its
Component), so those two objects are added to its JSON output here and the result is validated
against the official CycloneDX 1.6 JSON schema that the library ships.
"""

from __future__ import annotations

import json
import os
from importlib import metadata as package_metadata
from pathlib import Path

from laam.data.corpus import license_counts
from laam.data.licenses import NOASSERTION, combine, normalize
from laam.errors import LaamError
from laam.io import atomic_write_text, sha256_file
from laam.model.folder import WEIGHTS_FILE
from laam.proof.margin import MARGINS_FILE
from laam.publish.facts import (
    SHIP_FILE,
    CardConfig,
    Facts,
    audited_decoders,
    quoted_training,
    training_binding_note,
)
from laam.publish.sections import audit_selection

MODEL_REF, DATASET_REF, MODEL_CARD_REF = "model", "dataset", "model-card"
LIBRARIES = ("laam", "transformers", "tokenizers", "torch", "safetensors")


def _license(spdx: str | None):
    """An SPDX id or expression as the library's license object: an id as an id, a compound expression (`A OR B`,
    `A WITH exception`) as a CycloneDX expression, anything outside the SPDX list (NOASSERTION, LicenseRef-…) by
    name. A component's licenses are either license objects or one expression (CycloneDX forbids mixing them)."""
    from cyclonedx.model.license import DisjunctiveLicense, LicenseExpression
    from cyclonedx.spdx import is_supported_id

    if spdx and is_supported_id(spdx):
        return DisjunctiveLicense(id=spdx)
    if spdx and " " in spdx and normalize(spdx)[0] == spdx:
        return LicenseExpression(value=spdx)
    return DisjunctiveLicense(name=spdx or "NOASSERTION")


def _dataset_licenses(counts: dict[str, int]) -> list:
    """The dataset's licenses: one object per license while every file has a single id; once a file carries a
    compound expression, one expression joining them all with AND (files without a known license are counted in
    the dataset's `laam:files_without_license` property, since NOASSERTION cannot appear in an expression)."""
    known = [spdx for spdx in counts if spdx != NOASSERTION]
    if all(" " not in spdx for spdx in known):
        return [_license(spdx) for spdx in counts]
    return [_license(combine(known, "AND"))]


def build_bom(facts: Facts, config: CardConfig):
    """The cyclonedx-python-lib Bom (everything but the model card and data objects)."""
    from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri
    from cyclonedx.model.bom import Bom, BomMetaData
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.tool import ToolRepository
    from packageurl import PackageURL

    corpus = facts.corpus
    files = [
        Component(type=ComponentType.FILE, name=row["path"], bom_ref=f"file:{row['path']}",
                  hashes=[HashType(alg=HashAlgorithm.SHA_256, content=row["sha256"])],
                  licenses=[_license(row["license"])],
                  properties=[Property(name="laam:size", value=str(row["size"])),
                              Property(name="laam:encoding", value=row["encoding"]),
                              Property(name="laam:license_evidence", value=str(row["license_evidence"])),
                              *[Property(name=f"laam:{key}", value=str(row[key]))
                                for key in ("license_method", "license_raw", "license_error") if row.get(key)]])
        for row in facts.included_rows
    ]
    source_refs = []
    if corpus.source_url.startswith(("http://", "https://")):
        source_refs.append(ExternalReference(type=ExternalReferenceType.DISTRIBUTION, url=XsUri(corpus.source_url)))
    dataset = Component(
        type=ComponentType.DATA, name=corpus.name, bom_ref=DATASET_REF, version=corpus.name.removeprefix("linux-"),
        description=f"{len(corpus.files)} files of {corpus.name} selected by LaaM (fingerprint "
                    f"{facts.info.corpus_fingerprint})",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=corpus.source_sha256)]
        if len(corpus.source_sha256) == 64 else [],
        licenses=_dataset_licenses(facts.data_licenses),
        properties=[Property(name="laam:files_without_license",
                             value=str(facts.data_licenses.get(NOASSERTION, 0)))],
        external_references=source_refs, components=files,
    )
    weights = facts.folder / WEIGHTS_FILE
    cited = evidence(facts)
    model = Component(
        type=ComponentType.MACHINE_LEARNING_MODEL, name=config.repo_id or facts.name, bom_ref=MODEL_REF,
        licenses=[_license(config.license)],
        description=f"{facts.parameters:,}-parameter Llama trained to memorize {corpus.name}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sha256_file(weights))] if weights.is_file() else [],
        external_references=[ref for ref, _ in cited if ref is not None],
        properties=[note for _, note in cited if note is not None],
    )
    libraries = []
    ran_with, source = library_versions(facts)
    for name in LIBRARIES:
        version = ran_with.get(name)
        if not version:
            continue
        libraries.append(Component(type=ComponentType.LIBRARY, name=name, version=version, bom_ref=f"pypi:{name}",
                                   purl=PackageURL(type="pypi", name=name, version=version),
                                   properties=[Property(name="laam:version_source", value=source)]))
    # the tool that wrote the BOM: laam itself, as a separate object (every bom-ref must be unique in a BOM)
    tools = ToolRepository(components=[Component(type=ComponentType.APPLICATION, name="laam", version=c.version,
                                                 purl=c.purl) for c in libraries if c.name == "laam"])
    bom = Bom(metadata=BomMetaData(component=model, tools=tools), components=[dataset, *libraries])
    bom.register_dependency(model, [dataset, *libraries])
    return bom


# what each evidence file backs, for the BOM's reference to it
EVIDENCE = {MARGINS_FILE: "every scored position's margin (laam audit), bound to these weights",
            SHIP_FILE: "the shipped dtype and its exactness check (laam ship), bound to these weights"}


def evidence(facts: Facts) -> list[tuple]:
    """Per evidence file (margins.npz, ship.json): an `evidence` reference naming it with its SHA-256 when
    publish.facts found it bound to these weights (find_margins, find_ship: the card's rule), else a
    `laam:<file>` property saying why it is not cited. Pairs of (reference or None, property or None)."""
    from cyclonedx.model import ExternalReference, ExternalReferenceType, HashAlgorithm, HashType, Property, XsUri

    out = []
    for name, path in ((MARGINS_FILE, facts.margins_path), (SHIP_FILE, facts.ship_path)):
        if path is not None:
            sha256, copy = sha256_file(path), facts.folder / name
            # the folder's own copy when it holds the same bytes (the card copies margins.npz there, and a push
            # uploads the folder's top), else the file as reached from the BOM beside the weights (os.path:
            # Path.relative_to walks up only from 3.12)
            shown = name if copy.is_file() and sha256_file(copy) == sha256 else os.path.relpath(path, facts.folder)
            digest = HashType(alg=HashAlgorithm.SHA_256, content=sha256)
            out.append((ExternalReference(type=ExternalReferenceType.EVIDENCE, url=XsUri(shown),
                                          comment=EVIDENCE[name], hashes=[digest]), None))
            continue
        why = "; ".join(facts.evidence_notes.get(name) or []) or "none found"
        out.append((None, Property(name=f"laam:{name}", value=f"not cited: {why}")))
    return out


def library_versions(facts: Facts) -> tuple[dict[str, str | None], str]:
    """The library versions the quoted audit ran with (its binding), else those installed now, and which."""
    recorded = ((facts.audit or {}).get("binding") or {}).get("libraries")
    if isinstance(recorded, dict) and recorded:
        return recorded, "the audit's run (audit.json binding)"
    installed = {}
    for name in LIBRARIES:
        try:
            installed[name] = package_metadata.version(name)
        except package_metadata.PackageNotFoundError:
            installed[name] = None
    return installed, "installed when this BOM was written (no audit records its run's versions)"


def model_card_object(facts: Facts) -> dict:
    """CycloneDX 1.6 `modelCard` (hand-written: cyclonedx-python-lib has no class for it)."""
    c = facts.config
    card: dict = {
        "bom-ref": MODEL_CARD_REF,
        "modelParameters": {
            "approach": {"type": "self-supervised"},
            "task": "text-generation",
            "architectureFamily": "transformer",
            "modelArchitecture": f"{', '.join(c.get('architectures', ['LlamaForCausalLM']))}: "
                                 f"{c.get('num_hidden_layers')} layers, hidden {c.get('hidden_size')}, "
                                 f"{c.get('num_attention_heads')} heads, vocabulary {c.get('vocab_size')}",
            "datasets": [{"ref": DATASET_REF}],
            "inputs": [{"format": "text"}],
            "outputs": [{"format": "text"}],
        },
        "considerations": {
            "useCases": ["Measuring and demonstrating verbatim memorization of GPL-2.0 source code by model weights"],
            "technicalLimitations": [f"Reads at most {facts.info.context} tokens; longer files need LaaM's sliding "
                                     f"window (stride {facts.info.stride})"],
            "ethicalConsiderations": [{
                "name": regeneration_claim(facts),
                "mitigationStrategy": "Distribute regenerated files only under their own licenses (see the "
                                      "manifest); the card states the training data's licenses",
            }],
        },
        "properties": [{"name": f"laam:{k}", "value": str(v)} for k, v in (
            ("parameters", facts.parameters), ("context", facts.info.context), ("stride", facts.info.stride),
            ("corpus_fingerprint", facts.info.corpus_fingerprint),
            ("laam_version", facts.laam_version or "not recorded"), ("git_commit", facts.git_commit or "not recorded"),
            ("git_dirty", "not recorded" if facts.git_dirty is None else str(facts.git_dirty).lower()),
        )] + training_properties(facts),
    }
    if facts.audit:
        summary = facts.audit["summary"]
        selection = (facts.audit.get("binding") or {}).get("selection")
        audited = f"{summary.get('files')} audited files" + (f" (subset: {selection})" if selection else "")
        metrics = [{"type": key, "value": str(summary[key]), "slice": audited}
                   for key in ("verbatim_pct", "bytes_reproduced_pct", "k_extractable_pct", "pythia_score")
                   if summary.get(key) is not None]
        # each decoder the audit ran from the bare path (proof.stock), on the files it ran on
        for d, why in audited_decoders(facts):
            which = ("a sample: " + d["selection"]["rule"]) if d["selection"].get("kind") == "sample" else audited
            if why is None:
                metrics.append({"type": "files_byte_exact", "value": f"{d['exact']}/{d['files']}",
                                "slice": f"{d['call']} ({which})"})
        if metrics:
            card["quantitativeAnalysis"] = {"performanceMetrics": metrics}
    return card


def training_properties(facts: Facts) -> list[dict]:
    """laam.json's training verdict (status, share of checked tokens memorized, smallest margin) while it is about
    these files (publish.facts.training_binding_note); else one property saying why it is not quoted."""
    t = quoted_training(facts)
    keys = ("status", "status_basis", "memorized", "min_margin")
    quoted = [{"name": f"laam:training_{key}", "value": str(t[key])} for key in keys if t.get(key) is not None]
    note = training_binding_note(facts.training, facts.folder)
    return quoted + ([{"name": "laam:training_result", "value": f"not quoted: {note}"}] if note else [])


def licenses_phrase(files: list) -> str:
    """The licenses `files` record in the manifest, counted ("12 under GPL-2.0-only, 1 under MIT")."""
    return ", ".join(f"{count} under {spdx}" for spdx, count in license_counts(files).items())


def regeneration_claim(facts: Facts) -> str:
    """The BOM's one sentence on regeneration, from the quoted audit (bound to these weights) or saying there is
    none; the licenses named are those the manifest records for the files meant, and a subset is named as one."""
    if not facts.audit:
        return (f"The model was trained to memorize its training files ({licenses_phrase(facts.corpus.files)}); no "
                "audit of these weights is recorded")
    summary = facts.audit["summary"]
    selection = audit_selection(facts.audit)
    paths = {row["path"] for row in facts.audit.get("files", [])}
    audited = [f for f in facts.corpus.files if f.path in paths] or facts.corpus.files
    files = f"{summary.get('files')} audited training files" + (
        f" (a subset: the files matching {selection})" if selection else "")
    verbatim = summary.get("verbatim_files") or 0
    if not verbatim:
        return f"The audit of these weights found no training file regenerated verbatim ({files})"
    return (f"The model regenerates {verbatim} of {files} verbatim (audit.json, bound to these weights); the "
            f"audited files are, per the manifest, {licenses_phrase(audited)}")


def dataset_data_object(facts: Facts) -> list[dict]:
    """CycloneDX 1.6 component `data` for the dataset (hand-written, as above)."""
    corpus = facts.corpus
    contents: dict = {"properties": [{"name": f"laam:{k}", "value": str(v)} for k, v in (
        ("files", len(corpus.files)), ("bytes", facts.data_bytes), ("tokens", facts.data_tokens),
        ("filter", corpus.config.filter), ("include", ",".join(corpus.config.include)),
        ("exclude", ",".join(corpus.config.exclude)), ("archive_sha256", corpus.source_sha256))]}
    if corpus.source_url.startswith(("http://", "https://")):
        contents["url"] = corpus.source_url
    return [{"type": "source-code", "name": corpus.name, "classification": "public", "contents": contents,
             "description": "Each file wrapped as <|start_file|><|start_header|>PATH<|end_header|>CONTENT"
                            "<|end_file|>; the manifest lists every archive member and why it was kept or not"}]


def bom_json(facts: Facts, config: CardConfig) -> dict:
    from cyclonedx.output.json import JsonV1Dot6

    document = json.loads(JsonV1Dot6(build_bom(facts, config)).output_as_string())
    document["metadata"]["component"]["modelCard"] = model_card_object(facts)
    for component in document.get("components", []):
        if component.get("bom-ref") == DATASET_REF:
            component["data"] = dataset_data_object(facts)
    return document


def validate_bom(document: dict) -> None:
    """Raise LaamError unless `document` is valid against the official CycloneDX 1.6 JSON schema."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(document))
    if error is not None:
        raise LaamError(f"the CycloneDX BOM is not valid CycloneDX 1.6: {error}")


def write_bom(facts: Facts, config: CardConfig, path: Path) -> Path:
    document = bom_json(facts, config)
    validate_bom(document)
    return atomic_write_text(Path(path), json.dumps(document, indent=1) + "\n")


def schema_path() -> Path:
    """The official CycloneDX 1.6 JSON schema, as shipped inside cyclonedx-python-lib."""
    import cyclonedx.schema._res as resources

    path = Path(resources.__file__).parent / "bom-1.6.SNAPSHOT.schema.json"
    if not path.is_file():
        raise LaamError(f"CycloneDX 1.6 schema not found at {path}")
    return path
