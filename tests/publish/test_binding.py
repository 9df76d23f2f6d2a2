"""Every report is bound to the files it was computed on: the card, BOM and push quote only reports whose binding
matches the model folder as it is now (model.binding, publish.facts)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from laam.cli import app
from laam.errors import LaamError
from laam.model.binding import BOUND_FILES, binding_problems, fingerprints, report_binding
from laam.publish.facts import CardConfig
from laam.publish.sections import pct, roundtrip_sentence
from tests.publish.test_card import AUDIT, bound, make_run


def _card(model: Path) -> str:
    result = CliRunner().invoke(app, ["card", "--model", str(model), "--quiet"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return (model / "README.md").read_text()


def _flip_last_byte(path: Path) -> None:
    """Other weights of the same shapes: the last byte of the last tensor changed (the header stays valid)."""
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_binding_records_every_decoding_file_and_notices_a_change(tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    binding = report_binding(folder, "*/ctype.c")
    assert {"model.safetensors", "tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json",
            "custom_generate/generate.py"} <= set(binding["files"]) <= set(BOUND_FILES)
    assert binding["selection"] == "*/ctype.c" and binding["git_dirty"] in (True, False, None)
    assert binding["corpus_fingerprint"] == json.loads((folder / "laam.json").read_text())["corpus_fingerprint"]
    report = {"summary": {}, "binding": binding}
    assert binding_problems(report, folder) == []
    # stock decoding changes with one flag of tokenizer_config.json (" ?" -> "?"): that edit unbinds the report
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["clean_up_tokenization_spaces"] = True  # (tests/data/test_tokenizer.py shows the stock decode breaking)
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert [p.split(":")[0] for p in binding_problems(report, folder)] == ["tokenizer_config.json changed"]
    (folder / "custom_generate" / "generate.py").unlink()
    assert "custom_generate/generate.py is gone" in binding_problems(report, folder)
    assert binding_problems({"summary": {}}, folder) == [
        "it records no binding (no SHA-256 of the weights and tokenizer it was computed on)"]
    assert fingerprints(folder)["model.safetensors"] == binding["files"]["model.safetensors"]


def test_audit_card_reaudit_card_shows_the_new_audit(tiny_model_dir, tmp_path):
    """audit a subset -> card -> audit everything -> card: the card quotes the newer audit, not its own old copy."""
    from laam.proof.audit import AuditConfig, audit_model

    run = make_run(tiny_model_dir, tmp_path, audit=False)
    model = run / "model"
    cheap = {"extraction": False, "certificate": False}
    first = audit_model(model, AuditConfig(files="*/ctype.c", **cheap), report=False)
    assert first.audit["binding"]["selection"] == "*/ctype.c" and binding_problems(first.audit, model) == []
    text = _card(model)
    assert "| files audited | 1 (subset: `*/ctype.c`) |" in text
    assert "a subset: the files matching `*/ctype.c`" in text
    assert "name: Verbatim regeneration of training files matching */ctype.c (a subset)" in text
    assert json.loads((model / "audit.json").read_text())["summary"]["files"] == 1  # the card's own copy
    audit_model(model, AuditConfig(**cheap), report=False)
    text = _card(model)
    assert "| files audited | 12 |" in text and "subset" not in text
    assert json.loads((model / "audit.json").read_text())["summary"]["files"] == 12


def test_replaced_weights_make_the_card_refuse_the_old_audit(tiny_model_dir, tmp_path):
    from laam.publish.card import write_card
    from laam.publish.hub import plan_push

    run = make_run(tiny_model_dir, tmp_path)
    model = run / "model"
    text = _card(model)
    assert "regenerated 11 of 12" in text and (model / "audit.json").is_file()
    _flip_last_byte(model / "model.safetensors")
    with pytest.raises(LaamError, match="is not an audit of .* model.safetensors changed"):
        write_card(model, CardConfig(audit=model / "audit" / "audit.json"))
    # the push plan of the folder carded before the weights changed refuses its audit
    plan = plan_push(model, "laam-test/tiny")
    assert any(p.startswith("audit.json was not computed on these files (model.safetensors changed")
               for p in plan.problems)
    result = CliRunner().invoke(app, ["card", "--model", str(model), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "not quoted:" in result.output and "model.safetensors changed" in result.output
    text = (model / "README.md").read_text()
    assert "Not audited yet" in text and "regenerated 11 of 12" not in text and "**regenerate**" not in text
    assert "- Not quoted: `model/audit/audit.json`: not computed on these files (model.safetensors changed: " \
           "SHA-256" in text
    assert not (model / "audit.json").exists()  # the stale copy does not travel with these weights
    bom = json.loads((model / "bom.cdx.json").read_text())
    card = bom["metadata"]["component"]["modelCard"]
    assert "quantitativeAnalysis" not in card
    assert "no audit of these weights" in card["considerations"]["ethicalConsiderations"][0]["name"]


def test_an_unbound_audit_is_never_quoted(tiny_model_dir, tmp_path):
    from laam.publish.card import write_card

    run = make_run(tiny_model_dir, tmp_path, audit=False)
    (tmp_path / "old.json").write_text(json.dumps(AUDIT))  # an audit.json with a summary but no binding
    with pytest.raises(LaamError, match="records no binding"):
        write_card(run / "model", CardConfig(audit=tmp_path / "old.json"))


def test_bom_states_regeneration_from_the_bound_audit(tiny_model_dir, tmp_path):
    run = make_run(tiny_model_dir, tmp_path, audit=False)
    model = run / "model"
    (model / "audit").mkdir()
    summary = {**AUDIT["summary"], "verbatim_files": 0, "verbatim_pct": 0.0}
    (model / "audit" / "audit.json").write_text(json.dumps(bound({"summary": summary}, model, "*/c*.c")))
    _card(model)
    card = json.loads((model / "bom.cdx.json").read_text())["metadata"]["component"]["modelCard"]
    assert card["considerations"]["ethicalConsiderations"][0]["name"].startswith(
        "The audit of these weights found no training file regenerated verbatim")
    slices = {m["slice"] for m in card["quantitativeAnalysis"]["performanceMetrics"]}
    assert slices == {"12 audited files (subset: */c*.c)"}


def test_percentages_are_floored_never_rounded_up_to_100():
    one_wrong = 100 * (1 - 1 / 1_600_000)
    assert pct(one_wrong) == "99.99%" and pct(one_wrong, 3) == "99.999%"
    assert pct(100.0) == "100.00%" and pct(0.29) == "0.29%" and pct(91.6667) == "91.66%" and pct(None) == "n/a"


def test_decompress_is_claimed_only_when_the_round_trip_verified_every_file():
    report = {"corpus": {"files": 12}, "roundtrip": {"files": 12, "verified": 12}}
    assert roundtrip_sentence(report).startswith("`laam decompress` rebuilt all 12 byte for byte")
    assert "failed" in roundtrip_sentence({**report, "roundtrip": {"files": 12, "verified": 11}})
    assert "was not run" in roundtrip_sentence({**report, "roundtrip": None})


def test_a_compression_report_of_other_weights_is_not_quoted(tiny_model_dir, tmp_path):
    run = make_run(tiny_model_dir, tmp_path)
    model = run / "model"
    report = {"format": "laam-compression/1", "corpus": {"files": 12, "selected": None},
              "bits_per_byte": {"stream": 0.5, "raw": 0.6, "adjusted": 9.0},
              "roundtrip": {"files": 12, "verified": 12}, "binding": report_binding(model)}
    (model / "compression.json").write_text(json.dumps(report))
    assert "`laam decompress` rebuilt all 12 byte for byte" in _card(model)
    _flip_last_byte(model / "model.safetensors")
    text = _card(model)
    assert "The model as a compressor" not in text
    assert "- Not quoted: `model/compression.json`: not computed on these files (model.safetensors changed" in text


def test_the_card_names_the_shipped_decoding_code_by_its_sha256(tiny_model_dir, tmp_path):
    from laam.io import sha256_file

    run = make_run(tiny_model_dir, tmp_path)
    text = _card(run / "model")
    digest = sha256_file(run / "model" / "custom_generate" / "generate.py")
    assert f"SHA-256\n`{digest}`; read it before you run it). It decodes greedily" in text
    assert "ends a bare path prompt with `<|end_header|>` itself" in text


def test_laam_run_stops_before_the_card_when_the_round_trip_fails(tiny_model_dir, tmp_path, monkeypatch):
    """A failed `laam decompress` round trip ends `laam run` before audit and card: no card can claim it."""
    import laam.pipeline as pipeline
    import laam.proof.compress.run as compress_run

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    monkeypatch.setattr(pipeline, "train_recipe", lambda *args, **kwargs: folder)
    failed = {"roundtrip": {"files": 12, "verified": 11}, "report_path": str(folder / "compression.json")}
    monkeypatch.setattr(compress_run, "compress_corpus", lambda *args, **kwargs: failed)
    with pytest.raises(LaamError, match="round trip failed: decoding gave back 11 of 12 files"):
        pipeline.run(cache=tmp_path / "cache", progress=False)
    assert not (folder / "README.md").exists() and not (folder / "audit").exists()


def test_the_bom_lists_the_library_versions_the_audit_ran_with(tiny_model_dir, tmp_path):
    run = make_run(tiny_model_dir, tmp_path)
    model = run / "model"
    audit = json.loads((model / "audit" / "audit.json").read_text())
    audit["binding"]["libraries"] = {**audit["binding"]["libraries"], "torch": "2.99.0"}  # the run's, not today's
    (model / "audit" / "audit.json").write_text(json.dumps(audit))
    _card(model)
    components = {c["name"]: c for c in json.loads((model / "bom.cdx.json").read_text())["components"]}
    assert components["torch"]["version"] == "2.99.0"
    assert components["torch"]["properties"] == [{"name": "laam:version_source",
                                                  "value": "the audit's run (audit.json binding)"}]


def test_one_command_is_not_claimed_when_the_run_changed_settings_on_resume(tiny_model_dir, tmp_path):
    run = make_run(tiny_model_dir, tmp_path)
    info = json.loads((run / "model" / "laam.json").read_text())
    info["training"].update({"command": "laam train 1.0 --preset tiny --out /tmp/run",
                             "history": [{"step": 2, "changed": {"seed": [0, 1]}}]})
    (run / "model" / "laam.json").write_text(json.dumps(info))
    section = _card(run / "model").split("## How to reproduce")[1].split("## ")[0]
    assert "one command retrains" not in section
    assert "It does not replay this run: settings were changed while resuming (step 2: seed 0 -> 1;" in section


def test_binding_covers_laam_json_decoding_fields_and_every_bound_file(tiny_model_dir, tmp_path):
    """An edit to the laam.json fields decoders read (window rule, encodings) unbinds a report; so does a bound file
    the folder holds that the report never hashed. regenerate_gguf.py, written by a later export, does not."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    report = {"summary": {}, "binding": report_binding(folder)}
    assert binding_problems(report, folder) == []
    info = json.loads((folder / "laam.json").read_text())
    info["stride"] = info["stride"] - 1
    (folder / "laam.json").write_text(json.dumps(info))
    assert binding_problems(report, folder) == [
        "laam.json's decoding fields (context, stride, encodings, tokenizer_sha256) changed"]
    info["stride"] += 1
    info["encodings"] = {**(info.get("encodings") or {}), "linux/lib/ctype.c": "latin-1"}
    (folder / "laam.json").write_text(json.dumps(info))
    assert len(binding_problems(report, folder)) == 1
    shutil.copytree(tiny_model_dir, folder, dirs_exist_ok=True)
    (folder / "regenerate_gguf.py").write_text("# written by laam export gguf\n")
    assert binding_problems(report, folder) == []
    narrow = {"summary": {}, "binding": {**report["binding"], "files": {
        "model.safetensors": report["binding"]["files"]["model.safetensors"]}}}
    assert "it records no SHA-256 of tokenizer.json, which the folder holds now" in binding_problems(narrow, folder)


def test_push_refuses_a_card_and_bom_written_for_other_weights(tiny_model_dir, tmp_path):
    from laam.publish.hub import plan_push

    model = make_run(tiny_model_dir, tmp_path, audit=False) / "model"
    _card(model)
    assert not [p for p in plan_push(model, "laam-test/tiny").problems if "other weights" in p]
    _flip_last_byte(model / "model.safetensors")
    stale = [p for p in plan_push(model, "laam-test/tiny").problems if "other weights" in p]
    assert len(stale) == 1 and stale[0].startswith("bom.cdx.json and README.md were written for other weights")
    _card(model)
    assert not [p for p in plan_push(model, "laam-test/tiny").problems if "other weights" in p]
