"""Model card, openness checklists, CycloneDX BOM and the Hub dry run, on the tiny memorized model."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from laam.cli import app
from laam.errors import LaamError
from laam.publish.card import check_card, hf_license, render_card
from laam.publish.facts import CardConfig, gather_facts
from laam.publish.openness import MOF_COMPONENTS, mof_class

# an audit.json of the audit stage's schema (the audit itself is another stage's job)
AUDIT = {"summary": {"files": 12, "verbatim_files": 11, "verbatim_pct": 91.6667, "bytes_reproduced_pct": 97.25,
                     "k_extractable_pct": 83.5, "pythia_score": 0.9431, "k": 50, "pythia_prefix": 32}}
METRICS = [{"step": s, "loss": 5.0 / (1 + s), "tokens": 1000 * s} for s in range(0, 101, 10)] + [
    {"step": 100, "tokens": 100000, "memorized": 0.99875, "accuracy": 0.999}]


def bound(audit: dict, model_dir: Path, selection: str | None = None) -> dict:
    """A hand-written audit with the binding `laam audit` records: computed on `model_dir` as it is now."""
    from laam.model.binding import report_binding

    return {**audit, "binding": report_binding(model_dir, selection)}


def make_run(tiny_model_dir: Path, root: Path, audit: bool = True) -> Path:
    """A run folder as the training engine leaves it (run/model, run/metrics.jsonl, run/metrics.png),
    with an audit beside the model; the cached fixture itself is never written to."""
    run = root / "tiny-run"
    shutil.copytree(tiny_model_dir, run / "model")
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in METRICS))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(2, 1.5))
    axes.plot([m["step"] for m in METRICS if "loss" in m], [m["loss"] for m in METRICS if "loss" in m])
    figure.savefig(run / "metrics.png")
    plt.close(figure)
    if audit:  # where `laam audit` writes by default: MODEL/audit/audit.json and report.html, whose SHA-256 it records
        page = "<html><body>audit</body></html>"
        (run / "model" / "audit").mkdir()
        (run / "model" / "audit" / "report.html").write_text(page)
        report = {"file": "report.html", "sha256": hashlib.sha256(page.encode()).hexdigest()}
        audit = bound({**AUDIT, "report": report}, run / "model")
        (run / "model" / "audit" / "audit.json").write_text(json.dumps(audit))
    return run


@pytest.fixture(scope="module")
def carded(tiny_model_dir, tmp_path_factory) -> Path:
    """`laam card` run once through the CLI on a copy of the tiny model; returns the model folder."""
    run = make_run(tiny_model_dir, tmp_path_factory.mktemp("card"))
    result = CliRunner().invoke(app, ["card", "--model", str(run / "model"), "--repo-id", "laam-test/tiny"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "card metadata OK" in result.output
    return run / "model"


def test_card_metadata_matches_audit_and_license(carded):
    from huggingface_hub import ModelCard

    card = ModelCard.load(carded / "README.md")
    assert card.data.license == "mit"
    assert card.data.library_name == "transformers"
    assert card.data.pipeline_tag == "text-generation"
    assert "memorization" in card.data.tags
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert values == {"verbatim_files_pct": 91.6667, "bytes_reproduced_pct": 97.25, "k_extractable_pct": 83.5,
                      "pythia_score": 0.9431}
    assert check_card(carded) == []


def test_card_facts_come_from_the_run(carded, tiny_corpus, tarball):
    import torch
    from transformers import AutoModelForCausalLM

    from laam.data.tokenizer import encode_records, load_tokenizer

    text = (carded / "README.md").read_text()
    parameters = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(carded, dtype=torch.float32)
                     .parameters())
    tokens = sum(len(ids) for ids in encode_records(load_tokenizer(carded), tiny_corpus.records()))
    archive_sha = hashlib.sha256(tarball.read_bytes()).hexdigest()
    assert f"| parameters | {parameters:,} |" in text
    assert f"| tokens | {tokens:,} " in text
    assert f"`{archive_sha}`" in text
    assert f"| files | {len(tiny_corpus.files)} included of {tiny_corpus.members} archive members" in text
    assert "| GPL-2.0-only | 12 |" in text
    statement = text.split("## License of the training data")[1].split("##")[0]
    assert "12 under GPL-2.0-only" in statement and "declared under **MIT**" in statement
    assert "regenerated 11 of 12" in statement
    assert "laam corpus fetch 1.0 --filter source --include lib/ --exclude lib/malloc.c" in text
    assert 'pipeline("text-generation", "laam-test/tiny")' in text
    assert "![training loss](training_curve.png)" in text and (carded / "training_curve.png").is_file()
    assert f"| 100 | {5.0 / 101:.4f} |" in text  # the curve's last logged loss
    assert "memorized at the last evaluation (step 100): 99.875%" in text
    assert "[`audit.html`](audit.html)" in text


def test_folder_is_self_contained(carded, tiny_corpus):
    rows = [json.loads(line) for line in (carded / "manifest.jsonl").read_text().splitlines()]
    assert rows == tiny_corpus.manifest
    assert json.loads((carded / "corpus.json").read_text())["fingerprint"] == tiny_corpus.fingerprint()
    assert json.loads((carded / "audit.json").read_text()) == json.loads((carded / "audit" / "audit.json").read_text())
    assert (carded / "audit.html").read_text() == (carded / "audit" / "report.html").read_text()
    assert (carded / "metrics.jsonl").is_file()


def test_osaid_and_mof_tables(carded):
    text = (carded / "README.md").read_text()
    osaid = text.split("## Open Source AI Definition 1.0 checklist")[1].split("## ")[0]
    for group in ("Data information", "Code", "Parameters"):
        assert f"| {group} |" in osaid
    assert ("| Parameters | Model parameters under OSI-approved terms (declared: MIT) | ✅ | model.safetensors |"
            in osaid)
    # the tiny run records no training command: the checklist must say so, not pretend
    assert "| Code | Training code, with the arguments and settings used | ❌ |" in osaid
    mof = yaml.safe_load((carded / "mof.yml").read_text())
    assert mof["framework"]["name"] == "Model Openness Framework"
    components = {c["name"]: c for c in mof["release"]["components"]}
    assert set(components) | set(mof["laam"]["not_included"]) == {name for name, *_ in MOF_COMPONENTS}
    assert components["Model parameters (Final)"] == {
        "name": "Model parameters (Final)", "description": "Trained model parameters, weights and biases",
        "license": "MIT", "license_path": "https://spdx.org/licenses/MIT.html", "component_path": "model.safetensors"}
    assert components["Evaluation results"]["component_path"] == "audit.json, audit.html"
    # a local tarball is not a public place to get the data from; no technical report was given
    assert {"Technical report", "Datasets", "Research paper", "Training code"} <= set(mof["laam"]["not_included"])
    assert all(c["license"] for c in components.values())
    assert mof["release"]["license"]["data"]["name"] == "GPL-2.0-only"
    assert mof["laam"]["class"] == "Class III - Open Model (conditional)"
    assert "Class: **Class III - Open Model (conditional)**" in text


def _components(missing=(), licenses=None):
    licenses = licenses or {}
    return [{"name": n, "class": k, "required": r, "component_path": None if n in missing else "x",
             "license": licenses.get(n, "MIT")} for n, _, k, r in MOF_COMPONENTS]


def test_mof_class_rules():
    assert mof_class(_components()) == ("Class I - Open Science", [])
    assert mof_class(_components(missing=["Research paper"])) == ("Class II - Open Tooling", ["Research paper"])
    klass, missing = mof_class(_components(missing=["Training code", "Research paper"]))
    assert klass == "Class III - Open Model" and missing == ["Training code"]
    assert mof_class(_components(missing=["Technical report"]))[0] == "Class III - Open Model (conditional)"
    closed = {"Model parameters (Final)": "LicenseRef-proprietary"}
    assert mof_class(_components(missing=["Technical report"], licenses=closed))[0] == "Unclassified"
    assert mof_class(_components(licenses=closed))[0] == "Unclassified"


def test_license_ids_are_checked():
    from laam.publish.facts import spdx_id

    assert spdx_id("mit") == "MIT" and spdx_id("gpl-2.0-only") == "GPL-2.0-only"
    assert spdx_id("LicenseRef-laam-weights") == "LicenseRef-laam-weights"
    with pytest.raises(LaamError, match="not an SPDX license id"):
        spdx_id("MIT-ish")


def test_public_source_of_the_training_data():
    from types import SimpleNamespace

    from laam.publish.facts import public_source

    def facts(source, url):
        return SimpleNamespace(corpus=SimpleNamespace(source_url=url, config=SimpleNamespace(source=source)))

    kernel_org = "https://cdn.kernel.org/pub/linux/kernel/v1.0/linux-1.0.tar.xz"
    assert public_source(facts("1.0", kernel_org)) == kernel_org
    # a version read from a local mirror: the same release on kernel.org
    assert public_source(facts("1.0", "/srv/mirror/v1.0/linux-1.0.tar.gz")) == kernel_org.replace(".xz", ".gz")
    assert public_source(facts("2.6.39", "/m/v2.6/linux-2.6.39.tar.xz")).endswith("/v2.6/linux-2.6.39.tar.xz")
    # a tarball or folder of unknown origin has no public source
    assert public_source(facts("/data/linux-1.0.tar.xz", "file:///data/linux-1.0.tar.xz")) is None


def test_hub_license_ids():
    assert hf_license("MIT") == {"license": "mit"}
    assert hf_license("GPL-2.0-only") == {"license": "gpl-2.0"}
    other = hf_license("LicenseRef-laam-weights")
    assert other["license"] == "other" and other["license_name"] == "licenseref-laam-weights"


def test_card_without_audit_says_so(tiny_model_dir, tmp_path):
    from laam.publish.card import write_card

    run = make_run(tiny_model_dir, tmp_path, audit=False)
    info = json.loads((run / "model" / "laam.json").read_text())
    info["training"].update({"command": "/venv/bin/laam train 1.0 --preset tiny --out /tmp/run --max-steps 600 "
                                        "--mirror /srv/mirror --cache=/tmp/c -q",
                             "train_config": {"lr": 0.005, "batch_size": 8}, "git_commit": "0123abc"})
    (run / "model" / "laam.json").write_text(json.dumps(info))
    result = write_card(run / "model", CardConfig(license="Apache-2.0", technical_report="https://example.org/r"))
    text = result.card.read_text()
    # the recorded command, as run, and without this machine's folders as the one-command reproduction
    as_run = "laam train 1.0 --preset tiny --out /tmp/run --max-steps 600 --mirror /srv/mirror --cache=/tmp/c -q"
    assert f"`{as_run}`" in text
    assert "```sh\nlaam train 1.0 --preset tiny --max-steps 600\n```" in text
    assert '"lr": 0.005' in text and "git commit `0123abc`" in text
    assert "| Code | Training code, with the arguments and settings used | ✅ |" in text
    assert "Not audited yet" in text and "has not been audited yet" in text and "**regenerate**" not in text
    assert "model-index" not in text and "license: apache-2.0" in text
    assert check_card(run / "model") == []
    # no audit: Evaluation results are missing, so even the technical report does not earn an unconditional class
    assert result.mof_class == "Class III - Open Model (conditional)"
    mof = yaml.safe_load((run / "model" / "mof.yml").read_text())
    assert mof["laam"]["missing_for_next_class"] == ["Evaluation results"]
    training_code = next(c for c in mof["release"]["components"] if c["name"] == "Training code")
    assert training_code["license"] == "MIT" and "laam.train" in training_code["component_path"]


# --- CycloneDX --------------------------------------------------------------------------------------

def _schema_validator():
    """The official CycloneDX 1.6 JSON schema (and the SPDX and JSF schemas it references), via jsonschema."""
    from jsonschema import Draft7Validator
    from referencing import Registry, Resource

    from laam.publish.bom import schema_path

    folder = schema_path().parent
    names = ("spdx.SNAPSHOT.schema.json", "jsf-0.82.SNAPSHOT.schema.json", "cryptography-defs.SNAPSHOT.schema.json")
    registry = Registry().with_resources(
        (f"http://cyclonedx.org/schema/{name}", Resource.from_contents(json.loads((folder / name).read_text())))
        for name in names)
    schema = json.loads(schema_path().read_text())
    assert schema["$id"] == "http://cyclonedx.org/schema/bom-1.6.schema.json"
    return Draft7Validator(schema, registry=registry, format_checker=Draft7Validator.FORMAT_CHECKER)


def test_bom_is_valid_cyclonedx_1_6_with_model_card(carded, tiny_corpus):
    bom = json.loads((carded / "bom.cdx.json").read_text())
    errors = sorted(_schema_validator().iter_errors(bom), key=str)
    assert errors == []
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    model = bom["metadata"]["component"]
    assert model["type"] == "machine-learning-model"
    assert model["licenses"] == [{"license": {"id": "MIT"}}]
    assert model["hashes"][0]["content"] == hashlib.sha256((carded / "model.safetensors").read_bytes()).hexdigest()
    card = model["modelCard"]
    assert card["modelParameters"]["datasets"] == [{"ref": "dataset"}]
    metrics = {m["type"]: float(m["value"]) for m in card["quantitativeAnalysis"]["performanceMetrics"]}
    assert metrics["verbatim_pct"] == AUDIT["summary"]["verbatim_pct"]
    dataset = next(c for c in bom["components"] if c["bom-ref"] == "dataset")
    assert dataset["type"] == "data" and dataset["data"][0]["type"] == "source-code"
    files = {c["name"]: c for c in dataset["components"]}
    assert set(files) == {f.path for f in tiny_corpus.files}
    for f in tiny_corpus.files:
        assert files[f.path]["hashes"] == [{"alg": "SHA-256", "content": hashlib.sha256(f.data).hexdigest()}]
        assert files[f.path]["licenses"] == [{"license": {"id": f.license}}]
    assert "dataset" in next(x for x in bom["dependencies"] if x["ref"] == "model")["dependsOn"]
    refs = []

    def collect(node):  # every bom-ref must be unique within a BOM (the schema cannot check it)
        if isinstance(node, dict):
            refs.extend([node["bom-ref"]] if "bom-ref" in node else [])
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)

    collect(bom)
    assert len(refs) == len(set(refs)) and len(refs) > len(tiny_corpus.files)


def test_bom_validation_rejects_a_broken_model_card(carded):
    from laam.publish.bom import validate_bom

    bom = json.loads((carded / "bom.cdx.json").read_text())
    validate_bom(bom)
    bom["metadata"]["component"]["modelCard"]["modelParameters"]["approach"]["type"] = "guesswork"
    with pytest.raises(LaamError, match="not valid CycloneDX 1.6"):
        validate_bom(bom)
    assert list(_schema_validator().iter_errors(bom))


# --- publishing -------------------------------------------------------------------------------------

def test_push_dry_run_lists_the_artefacts_only(carded, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(carded, folder)
    (folder / "notes.txt").write_text("scratch")
    (folder / "checkpoints").mkdir()
    result = CliRunner().invoke(app, ["push", "--repo-id", "laam-test/tiny", "--model", str(folder), "--dry-run"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[-1] for line in result.output.splitlines() if line.startswith("  ")}
    expected = {"README.md", "bom.cdx.json", "mof.yml", "manifest.jsonl", "corpus.json", "audit.json", "audit.html",
                "model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
                "tokenizer_config.json", "laam.json", "training_curve.png", "metrics.jsonl",
                "custom_generate/generate.py"}  # the sliding-window loop transformers runs with trust_remote_code
    assert listed == expected
    assert "nothing uploaded" in result.output and "warning" not in result.output


def test_push_refuses_without_card_or_token(carded, tmp_path, monkeypatch):
    from laam.publish.hub import plan_push, push

    folder = tmp_path / "model"
    shutil.copytree(carded, folder)
    (folder / "README.md").unlink()
    result = CliRunner().invoke(app, ["push", "--repo-id", "laam-test/tiny", "--model", str(folder), "--dry-run"])
    assert result.exit_code != 0 and "missing README.md" in str(result.exception)
    with pytest.raises(LaamError, match="ORG/NAME"):
        plan_push(carded, "no-slash")
    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no saved login either
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf-home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf-home" / "stored_tokens"))
    with pytest.raises(LaamError, match="no Hugging Face token"):
        push(plan_push(carded, "laam-test/tiny"))


def test_license_statement_follows_the_audit_numbers(tiny_model_dir, tmp_path):
    from laam.publish.card import write_card

    run = make_run(tiny_model_dir, tmp_path, audit=False)
    for verbatim, reproduced, expected in ((0, 4.6, "reproduces parts of its training files, but no whole file"),
                                           (0, 0.0, "does not reproduce its training files"),
                                           (3, 40.0, "the weights **regenerate** 3 of them")):
        summary = {**AUDIT["summary"], "verbatim_files": verbatim, "verbatim_pct": 100 * verbatim / 12,
                   "bytes_reproduced_pct": reproduced}
        (tmp_path / "audit.json").write_text(json.dumps(bound({"summary": summary}, run / "model")))
        text = write_card(run / "model", CardConfig(audit=tmp_path / "audit.json")).card.read_text()
        statement = text.split("## License of the training data")[1].split("##")[0]
        assert f"regenerated {verbatim} of 12 audited files" in statement and expected in statement
        assert ("**regenerate**" in statement) == (verbatim > 0)


def test_card_rejects_a_broken_audit(tiny_model_dir, tmp_path):
    from laam.publish.card import write_card

    run = make_run(tiny_model_dir, tmp_path, audit=False)
    (tmp_path / "bad.json").write_text(json.dumps({"files": []}))
    with pytest.raises(LaamError, match="no \"summary\""):
        write_card(run / "model", CardConfig(audit=tmp_path / "bad.json"))
    with pytest.raises(LaamError, match="no audit at"):
        write_card(run / "model", CardConfig(audit=tmp_path / "missing.json"))


def test_bom_stays_valid_with_licenses_outside_the_spdx_list(carded):
    from laam.publish.bom import bom_json, validate_bom
    from laam.publish.facts import gather_facts

    facts = gather_facts(carded)
    odd = {facts.corpus.files[0].path: "LicenseRef-public-domain", facts.corpus.files[1].path: "NOASSERTION"}
    for f in facts.corpus.files:
        f.license = odd.get(f.path, f.license)
    for row in facts.corpus.manifest:
        row["license"] = odd.get(row["path"], row["license"])
    bom = bom_json(facts, CardConfig(license="LicenseRef-laam-weights"))
    validate_bom(bom)
    assert not list(_schema_validator().iter_errors(bom))
    dataset = next(c for c in bom["components"] if c["bom-ref"] == "dataset")
    assert {"license": {"name": "LicenseRef-public-domain"}} in dataset["licenses"]
    assert bom["metadata"]["component"]["licenses"] == [{"license": {"name": "LicenseRef-laam-weights"}}]


def test_bom_writes_compound_licenses_as_cyclonedx_expressions(carded):
    from laam.publish.bom import bom_json, validate_bom
    from laam.publish.facts import gather_facts
    from laam.publish.openness import data_license, is_open

    facts = gather_facts(carded)
    dual = "GPL-2.0-only WITH Linux-syscall-note OR MIT"
    first = facts.corpus.files[0].path
    facts.corpus.files[0].license = dual
    for row in facts.corpus.manifest:
        row["license"] = dual if row["path"] == first else row["license"]
    bom = bom_json(facts, CardConfig())
    validate_bom(bom)
    assert not list(_schema_validator().iter_errors(bom))
    dataset = next(c for c in bom["components"] if c["bom-ref"] == "dataset")
    files = {c["name"]: c for c in dataset["components"]}
    assert files[first]["licenses"] == [{"expression": dual}]
    combined = f"GPL-2.0-only AND ({dual})"
    assert dataset["licenses"] == [{"expression": combined}] and data_license(facts) == combined
    assert is_open(data_license(facts))


def test_card_quotes_the_models_compression_figures(tiny_model_dir, tmp_path):
    """`laam compress --out MODEL/…` leaves compression.json in the model folder; the card quotes its bits/byte."""
    from typer.testing import CliRunner


    model = make_run(tiny_model_dir, tmp_path) / "model"
    result = CliRunner().invoke(app, ["compress", "--model", str(model), "--out", str(model / "corpus.laamz"),
                                      "--no-archive-baselines", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    report = json.loads((model / "compression.json").read_text())
    card = render_card(gather_facts(model), CardConfig())
    assert "### The model as a compressor" in card
    assert f"| this model, coded streams | {report['bits_per_byte']['stream']:.4f} |" in card
    gzip_bpb = report["baselines"]["same_bytes"]["gzip -9"]["bits_per_byte"]
    assert f"| `gzip -9` on the same bytes | {gzip_bpb:.4f} |" in card and gzip_bpb > report["bits_per_byte"]["stream"]


def test_card_shows_the_margin_certificate_and_comparable_extraction(tiny_model_dir, tmp_path):
    """The audit's margin certificate (smallest gap overall and per file, histogram), the lm-extraction-benchmark
    recall beside the audit's own metrics, and the one line on why 50-token extractable sits below verbatim."""
    from laam.proof.extraction import extraction_gap_note

    files = [{"path": f"linux/lib/f{i}.c", "min_margin": m, "under_safe_margin": int(m < 1), "k_samples": k}
             for i, (m, k) in enumerate([(5.5, 0), (0.25, 3), (2.0, 9), *((9.0 + i, 1) for i in range(10))])]
    audit = {"summary": {**AUDIT["summary"], "k_samples": 19, "min_margin": 0.25, "lm_extraction_recall": 0.002},
             "files": files, "method": {"extraction_every": 512},
             "lm_extraction": {"examples": 1000, "exact": 2, "recall": 0.002, "recall_at_100_errors": 0.001},
             "margin": {"threshold": 1.0, "body_tokens": 7909, "wrong_tokens": 0, "min_margin": 0.25,
                        "min_margin_at": {"path": "linux/lib/f1.c", "position": 18, "line": 3, "true": "close",
                                          "rival": "dup`x"},
                        "under_threshold": 1, "low_listed": 1,
                        "sequential": {"agrees": 1, "differs": 0, "diverged earlier": 0},
                        "histogram": {"bins": ["< 0 (wrong)", "0–1", "1–2", ">= 2"], "counts": [0, 1, 1, 7907]}}}
    run = make_run(tiny_model_dir, tmp_path, audit=False)
    (tmp_path / "audit.json").write_text(json.dumps(bound(audit, run / "model")))
    card = render_card(gather_facts(run / "model", CardConfig(audit=tmp_path / "audit.json")), CardConfig())
    section = card.split("### Margin certificate")[1].split("###")[0]
    assert "Smallest: **0.250** (`linux/lib/f1.c` line 3: `'close'` over `` 'dup`x' ``)" in section
    assert "0 wrong; 1 under the safety threshold 1 (LaaM's default" in section
    assert "measured on other models, LaaM's tiny and demo ones, not on these weights" in section
    from laam.engine.forcing import MIN_MARGIN
    from laam.publish.sections import floored, margin_drift

    drift = margin_drift()
    assert f"(LaaM's default, {floored(MIN_MARGIN / drift, 1)}x the largest margin change, {drift:g} logits" in section
    assert "1 agree with teacher forcing" in section
    listed = [line.split("|")[1].strip() for line in section.splitlines() if line.startswith("| `linux")]
    assert listed[:3] == ["`linux/lib/f1.c`", "`linux/lib/f2.c`", "`linux/lib/f0.c`"] and len(listed) == 10
    assert "The 10 tightest of 13 files" in section
    assert "| body tokens | 0 | 1 | 1 | 7,907 |" in section
    assert "| lm-extraction-benchmark recall (1,000 drawn 50+50-token examples) | 0.0020 (2 exact) |" in card
    note = extraction_gap_note(audit)
    assert note in card.splitlines()
    assert "19 samples of 50+50 tokens taken every 512 tokens" in note and "9 of them from linux/lib/f2.c" in note
    assert "(1 file too short to give one)" in note
    assert extraction_gap_note({"summary": {"k_extractable_pct": 100.0, "verbatim_pct": 100.0}}) is None


def test_card_and_hub_metadata_never_round_up(tiny_model_dir, tmp_path):
    """Figures just under a round number (one miss in millions) are printed floored everywhere the card and the
    Hub metadata show them: a Pythia score, a recall, a margin or an expected count never reads as the round value
    above it."""
    audit = {"summary": {**AUDIT["summary"], "verbatim_pct": 99.99996, "pythia_score": 0.99999996},
             "files": [{"path": "linux/lib/f0.c", "min_margin": 0.99996}],
             "lm_extraction": {"examples": 1000, "exact": 999, "recall": 0.99999, "recall_at_100_errors": 0.9},
             "margin": {"threshold": 1.0, "body_tokens": 10, "wrong_tokens": 0, "min_margin": 0.99996,
                        "min_margin_at": {"path": "linux/lib/f0.c", "position": 1, "line": 1, "true": "a",
                                          "rival": "b"},
                        "under_threshold": 1, "low_listed": 0,
                        "sequential": {"agrees": 0, "differs": 0, "diverged earlier": 0},
                        "histogram": {"bins": ["< 0", ">= 0"], "counts": [0, 10]}},
             "sampling": {"files": [{"path": f"f{i}"} for i in range(13)],
                          "settings": {"original": {"description": "t=1", "expected_verbatim_files": 12.99996}}}}
    run = make_run(tiny_model_dir, tmp_path, audit=False)
    (tmp_path / "audit.json").write_text(json.dumps(bound(audit, run / "model")))
    card = render_card(gather_facts(run / "model", CardConfig(audit=tmp_path / "audit.json")), CardConfig())
    assert "| Pythia memorization score (32-token prefix) | 0.9999 |" in card
    assert "| 0.9999 (999 exact) |" in card
    assert "Smallest: **0.999**" in card and "| `linux/lib/f0.c` | 0.999 |" in card
    assert "12.999 of 13" in card
    index = yaml.safe_load(card.split("---")[1])["model-index"][0]["results"]
    values = {m["type"]: m["value"] for r in index for m in r["metrics"]}
    assert values["verbatim_files_pct"] == 99.9999 and values["pythia_score"] == 0.9999


def test_usage_examples_claim_only_what_their_decoder_gave_back(tiny_model_dir, tmp_path):
    """An example's "prints X byte for byte" comes from the audit's run of the decoder that example runs (stock
    transformers, the GGUF's script): a file it did not run, got wrong, or a decoder it did not run is "not
    checked", whatever laam's engine gave back; without a GGUF the card shows no llama.cpp example."""
    from laam.publish.sections import loading_section, prints

    run = make_run(tiny_model_dir, tmp_path, audit=False)
    facts = gather_facts(run / "model")
    first, second, third = (f.path for f in facts.corpus.files[:3])
    rows = [{"path": f.path, "verbatim": True} for f in facts.corpus.files]
    sample = {"kind": "sample", "files": 2, "of": len(rows), "drawn": 2, "seed": 0, "added": [],
              "paths": [first, second], "rule": "2 files drawn at random (seed 0)"}
    stock = {"decoder": "transformers", "call": "pipeline(trust_remote_code=True)", "files": 2, "exact": 1,
             "failed": [second], "selection": sample, "not_run": None, "sha256": None}
    (tmp_path / "audit.json").write_text(json.dumps(bound({**AUDIT, "files": rows, "decoders": [stock]},
                                                          run / "model")))
    facts = gather_facts(run / "model", CardConfig(audit=tmp_path / "audit.json"))
    byfile = {f.path: f for f in facts.corpus.files}
    assert prints(facts, byfile[first], "transformers").startswith(f"prints `{first}` byte for byte (")
    assert prints(facts, byfile[second], "transformers").endswith(
        "not checked: the audit's `pipeline(trust_remote_code=True)` found it not byte for byte)")
    assert prints(facts, byfile[third], "transformers").endswith(
        "not checked: not among the files the audit's `transformers` decoder ran)")
    assert prints(facts, byfile[first], None).endswith("not checked: no decoder of the audit runs this call)")
    assert prints(facts, byfile[first], "gguf tiny.gguf").endswith(
        "not checked: the audit ran no `gguf tiny.gguf` decoder)")
    section = loading_section(facts, CardConfig(), "tiny.gguf")
    assert f"This prints `{first}` byte for byte" in section and "llama" not in section
    from laam.publish.sections import transformers_usage

    plain = transformers_usage(facts, ".", byfile[first], byfile[third]).split("Without `trust_remote_code`")[1]
    assert "the model must\npredict the `<|end_header|>` that ends the path itself" in plain
    assert "The audit runs no decoder for this call." in plain and "same computation" not in plain


def test_license_wording_comes_from_the_audited_files_licenses(tiny_model_dir, tmp_path):
    """The BOM's regeneration sentence names the audited subset and the licenses the manifest records for the
    audited files; the Hub's GPL tag is written only while every training file is GPL-2.0."""
    import dataclasses

    from laam.data.corpus import license_counts
    from laam.data.licenses import GPL2, satisfied_by
    from laam.publish.bom import regeneration_claim
    from laam.publish.card import card_data

    run = make_run(tiny_model_dir, tmp_path, audit=False)
    facts = gather_facts(run / "model")
    audited = facts.corpus.files[:2]
    rows = [{"path": f.path, "verbatim": True} for f in audited]
    summary = {**AUDIT["summary"], "files": 2, "verbatim_files": 2}
    (tmp_path / "audit.json").write_text(json.dumps(bound({"summary": summary, "files": rows}, run / "model",
                                                          "linux/lib/*")))
    facts = gather_facts(run / "model", CardConfig(audit=tmp_path / "audit.json"))
    claim = regeneration_claim(facts)
    listing = ", ".join(f"{n} under {spdx}" for spdx, n in license_counts(audited).items())
    assert claim == ("The model regenerates 2 of 2 audited training files (a subset: the files matching linux/lib/*) "
                     "verbatim (audit.json, bound to these weights); the audited files are, per the manifest, "
                     + listing)
    gpl = all(satisfied_by(f.license, GPL2) for f in facts.corpus.files)
    assert ("gpl-2.0-training-data" in card_data(facts, CardConfig()).tags) == gpl
    facts.corpus.files[0] = dataclasses.replace(facts.corpus.files[0], license="MIT")
    assert "gpl-2.0-training-data" not in card_data(facts, CardConfig()).tags
    assert "1 under MIT" in regeneration_claim(facts)


def test_no_file_is_cut_only_when_the_budget_covers_the_longest_file():
    from laam.publish.sections import budget_sentence

    assert budget_sentence({"max_new_tokens": 500}, 500).endswith("with its header), so no file is cut.")
    short = budget_sentence({"max_new_tokens": 499}, 500)
    assert "no file is cut" not in short and short.endswith("a file longer than that budget is cut; pass a larger "
                                                            "`max_new_tokens`.")
    assert "no file is cut" not in budget_sentence({}, 500)


def test_margin_threshold_ratio_is_read_from_the_recorded_benchmark(tmp_path):
    """The card's "N x the largest margin change" is MIN_MARGIN over benchmark margin_drift's recorded figure, and
    without that record the card names no ratio."""
    from laam.publish.sections import DRIFT_FILE, margin_drift

    recorded = json.loads((Path(__file__).resolve().parents[2] / DRIFT_FILE).read_text())["largest_margin_change"]
    assert margin_drift() == recorded
    (tmp_path / DRIFT_FILE).parent.mkdir(parents=True)
    (tmp_path / DRIFT_FILE).write_text(json.dumps({"largest_margin_change": 0.25}))
    assert margin_drift(tmp_path) == 0.25
    assert margin_drift(tmp_path / "none") is None


def test_the_intro_names_only_the_reports_the_card_quotes(tiny_model_dir, tmp_path):
    run = make_run(tiny_model_dir, tmp_path, audit=False)
    card = render_card(gather_facts(run / "model"), CardConfig())
    intro = next(line for line in card.splitlines() if line.startswith("regurgitation of GPL-2.0"))
    assert "`laam.json`, `config.json`" in intro and "audit" not in intro and "compression" not in intro
    (tmp_path / "audit.json").write_text(json.dumps(bound(AUDIT, run / "model")))
    card = render_card(gather_facts(run / "model", CardConfig(audit=tmp_path / "audit.json")), CardConfig())
    intro = next(line for line in card.splitlines() if line.startswith("regurgitation of GPL-2.0"))
    assert "and `audit.json`;" in intro and "Left out" not in intro


def test_card_says_how_to_write_a_file_that_is_not_utf8(tiny_model_dir, tmp_path):
    import dataclasses

    from laam.publish.sections import encoding_sentence

    facts = gather_facts(make_run(tiny_model_dir, tmp_path, audit=False) / "model")
    assert all(f.encoding == "utf-8" for f in facts.corpus.files) and encoding_sentence(facts) == ""
    first = facts.corpus.files[0]
    facts.corpus.files[0] = dataclasses.replace(first, encoding="latin-1")
    said = encoding_sentence(facts)
    assert f"1 training file(s) are not UTF-8: `{first.path}` (latin-1)" in said
    assert "write `text.encode(encoding)` to a file instead of printing it" in said


def test_the_audit_page_travels_only_when_audit_json_records_its_sha256(tiny_model_dir, tmp_path):
    """report.html is copied as audit.html, and linked, only while the quoted audit.json (bound to the weights)
    records its SHA-256; another page beside it is named as left out, and an earlier copy is removed."""
    from laam.publish.card import write_card

    model = make_run(tiny_model_dir, tmp_path) / "model"
    text = write_card(model, CardConfig(original_call=False)).card.read_text()
    assert "[`audit.html`](audit.html)" in text
    assert (model / "audit.html").read_text() == (model / "audit" / "report.html").read_text()
    (model / "audit" / "report.html").write_text("<html><body>another audit</body></html>")
    (model / "audit.json").unlink()  # the card's copy: the audit quoted is then MODEL/audit/audit.json
    text = write_card(model, CardConfig(original_call=False)).card.read_text()
    assert "[`audit.html`]" not in text and not (model / "audit.html").exists()
    assert "- Not quoted: `model/audit/report.html`: not the page written with the audit quoted (its SHA-256 is not " \
           "the one audit.json records)" in text
    audit = json.loads((model / "audit" / "audit.json").read_text())
    del audit["report"]
    (model / "audit" / "audit.json").write_text(json.dumps(audit))
    (model / "audit.json").unlink()
    text = write_card(model, CardConfig(original_call=False)).card.read_text()
    assert "`model/audit/report.html`: the audit.json it comes with records no SHA-256 of its page" in text


def test_the_weights_dtype_is_read_from_the_safetensors_header(tiny_model_dir, tmp_path):
    """The card's "weights dtype" is what model.safetensors stores, with config.json named only where it says
    otherwise; the MOF's "Model metadata" lists only the metadata files the folder holds."""
    from laam.publish.openness import mof_components
    from laam.publish.sections import architecture_rows

    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    facts = gather_facts(model)
    tensors = len(facts.tensors)
    assert dict(architecture_rows(facts))["weights dtype"] == f"float32, all {tensors:,} tensors (per the " \
                                                              "safetensors header)"
    config = json.loads((model / "config.json").read_text())
    config["dtype"] = "bfloat16"  # what transformers would load them as; the file still holds float32
    (model / "config.json").write_text(json.dumps(config))
    (model / "generation_config.json").unlink()
    facts = gather_facts(model)
    assert dict(architecture_rows(facts))["weights dtype"] == f"float32, all {tensors:,} tensors (per the " \
                                                              "safetensors header; config.json says bfloat16)"
    metadata = next(c for c in mof_components(facts, CardConfig()) if c["name"] == "Model metadata")
    assert metadata["component_path"] == "laam.json, config.json"
