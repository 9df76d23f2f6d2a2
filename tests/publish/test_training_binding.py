"""The card, the BOM and a push quote laam.json's training result (status, memorization) only while its binding
matches the folder, and say why a run is not called memorized."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from laam.cli import app
from laam.publish.facts import gather_facts
from laam.publish.sections import training_section
from tests.publish.test_card import make_run


def test_the_training_verdict_is_quoted_only_for_the_weights_it_was_measured_on(tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    info = json.loads((folder / "laam.json").read_text())
    info["training"].update(status="finished", memorized=1.0,
                            status_lowered=["--verify regenerated 11 of 12 files exactly"])
    (folder / "laam.json").write_text(json.dumps(info))
    section = training_section(gather_facts(folder))
    assert "| status | finished |" in section and "Not quoted" not in section
    assert "- Not called memorized: --verify regenerated 11 of 12 files exactly." in section
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    section = training_section(gather_facts(folder))
    assert "| status |" not in section and "| memorized |" not in section
    assert "- Not quoted: the training result's status and memorization figures, recorded for other files than " \
           "this folder's (model.safetensors changed" in section


def _model_card_properties(bom: Path) -> dict[str, str]:
    document = json.loads(bom.read_text())
    return {p["name"]: p["value"] for p in document["metadata"]["component"]["modelCard"]["properties"]}


def _card(folder: Path) -> None:
    result = CliRunner().invoke(app, ["card", "--model", str(folder), "--repo-id", "laam-test/tiny", "--quiet",
                                      "--no-original-call"])
    assert result.exit_code == 0, result.output + repr(result.exception)


def test_bom_and_push_do_not_quote_a_training_result_of_replaced_weights(tiny_model_dir, tmp_path):
    from laam.publish.hub import plan_push

    folder = make_run(tiny_model_dir, tmp_path, audit=False) / "model"
    info = json.loads((folder / "laam.json").read_text())
    info["training"].update(status="memorized", memorized=1.0, min_margin=2.5)  # a verdict, bound to these weights
    (folder / "laam.json").write_text(json.dumps(info))
    _card(folder)
    properties = _model_card_properties(folder / "bom.cdx.json")
    assert (properties["laam:training_status"], properties["laam:training_memorized"]) == ("memorized", "1.0")
    assert "| status | memorized |" in (folder / "README.md").read_text()
    assert not [w for w in plan_push(folder, "laam-test/tiny").warnings if "training result" in w]
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    # the card and BOM written for the old weights quote their verdict: the push stops, saying why
    plan = plan_push(folder, "laam-test/tiny")
    assert [w for w in plan.warnings if w.startswith("not quoted: the training result's status and memorization "
                                                    "figures, recorded for other files than this folder's "
                                                    "(model.safetensors changed")]
    assert [p.split(" quotes")[0] for p in plan.problems if "training verdict" in p] == ["README.md", "bom.cdx.json"]
    result = CliRunner().invoke(app, ["bom", "--model", str(folder), "--repo-id", "laam-test/tiny", "--quiet"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "not quoted: the training result's status and memorization figures" in " ".join(result.output.split())
    properties = _model_card_properties(folder / "bom.cdx.json")
    assert not [name for name in properties if name.startswith("laam:training_") and name != "laam:training_result"]
    assert properties["laam:training_result"].startswith("not quoted: the training result's status")
    assert "model.safetensors changed" in properties["laam:training_result"]
    _card(folder)
    result = CliRunner().invoke(app, ["push", "--repo-id", "laam-test/tiny", "--model", str(folder), "--dry-run"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    output = " ".join(result.output.split())
    assert "warning: not quoted: the training result's status and memorization figures" in output
    assert "nothing uploaded" in output
    card = (folder / "README.md").read_text()
    assert "| status |" not in card and "| memorized |" not in card and "- Not quoted: the training result's" in card


def test_a_training_result_without_a_binding_is_not_quoted(tiny_model_dir, tmp_path):
    """A laam.json whose training result records no binding says nothing about which weights it was measured on:
    its verdict is left out of the card and the BOM, one line says why, and a push warns."""
    from laam.model.binding import BINDING_KEY
    from laam.publish.hub import plan_push

    folder = make_run(tiny_model_dir, tmp_path, audit=False) / "model"
    info = json.loads((folder / "laam.json").read_text())
    assert isinstance(info["training"].pop(BINDING_KEY), dict)
    info["training"].update(status="memorized", memorized=1.0, min_margin=2.5)
    (folder / "laam.json").write_text(json.dumps(info))
    section = training_section(gather_facts(folder))
    assert "| status |" not in section and "| memorized |" not in section
    why = "the training result's status and memorization figures: laam.json records no binding to the files"
    assert f"- Not quoted: {why}" in section
    _card(folder)
    properties = _model_card_properties(folder / "bom.cdx.json")
    assert "laam:training_status" not in properties and properties["laam:training_result"].startswith(
        f"not quoted: {why}")
    assert f"not quoted: {why} they were measured on" in plan_push(folder, "laam-test/tiny").warnings


def test_the_training_code_is_quoted_as_recorded_with_its_dirty_flag(tiny_model_dir, tmp_path):
    """The card and the BOM name the laam version and commit the run recorded, with the dirty flag its binding
    records; a version the run did not record is "not recorded", never the version writing the card."""
    from laam.model.binding import BINDING_KEY

    folder = make_run(tiny_model_dir, tmp_path, audit=False) / "model"
    info = json.loads((folder / "laam.json").read_text())
    training = info["training"]
    training.pop("laam_version", None)
    training[BINDING_KEY].pop("laam_version")
    training["git_commit"] = training[BINDING_KEY]["git_commit"] = "0123abc"
    training[BINDING_KEY]["git_dirty"] = True
    (folder / "laam.json").write_text(json.dumps(info))
    section = training_section(gather_facts(folder))
    assert "- Package: `laam` (version not recorded by this run), git commit `0123abc` (with uncommitted changes)" \
        in section
    _card(folder)
    properties = _model_card_properties(folder / "bom.cdx.json")
    assert (properties["laam:laam_version"], properties["laam:git_commit"], properties["laam:git_dirty"]) == (
        "not recorded", "0123abc", "true")
    assert "With `laam` (version not recorded by this run), git commit `0123abc` (with uncommitted changes) " \
           "installed" in (folder / "README.md").read_text()


def test_the_status_says_how_it_was_earned(tiny_model_dir, tmp_path):
    """Beside the training status, the card and the BOM say whether --verify regenerated the files or the status
    rests on teacher-forced token checks only."""
    folder = make_run(tiny_model_dir, tmp_path, audit=False) / "model"
    info = json.loads((folder / "laam.json").read_text())
    info["training"].pop("regeneration", None)
    info["training"].update(status="memorized", memorized=1.0)
    (folder / "laam.json").write_text(json.dumps(info))
    forced = "teacher-forced token checks only; no regeneration of the files (--verify) recorded"
    assert f"| status_basis | {forced} |" in training_section(gather_facts(folder))
    info["training"]["regeneration"] = {"exact": 12, "files": 12}
    (folder / "laam.json").write_text(json.dumps(info))
    assert "| status_basis | --verify regenerated 12 of 12 files byte for byte |" in training_section(
        gather_facts(folder))
    _card(folder)
    assert _model_card_properties(folder / "bom.cdx.json")["laam:training_status_basis"] == (
        "--verify regenerated 12 of 12 files byte for byte")


def test_the_last_evaluations_memorization_is_quoted_only_with_the_training_verdict(tiny_model_dir, tmp_path):
    """metrics.jsonl's "Body tokens memorized at the last evaluation" measures the weights training ended with but
    records no binding: the card quotes it only while laam.json's training verdict is quoted (its binding matches),
    and says why not otherwise, as in a bf16 `laam ship` whose metrics.jsonl is the float32 run's."""
    from laam.model.binding import BINDING_KEY
    from laam.publish.sections import curve_section

    folder = make_run(tiny_model_dir, tmp_path, audit=False) / "model"
    figure = "Body tokens memorized at the last evaluation (step 100): 99.875%."
    assert figure in curve_section(gather_facts(folder))
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    section = curve_section(gather_facts(folder))
    assert "99.875" not in section
    assert ("Body tokens memorized at the last evaluation (step 100): not quoted: `metrics.jsonl` records no binding "
            "to the weights it measured, and the training result it belongs to is recorded for other files than this "
            "folder's (see Training code).") in section
    weights.write_bytes(bytes(data[:-1] + bytes([data[-1] ^ 0x01])))  # the trained weights back
    assert figure in curve_section(gather_facts(folder))
    info = json.loads((folder / "laam.json").read_text())
    info["training"].pop(BINDING_KEY)
    (folder / "laam.json").write_text(json.dumps(info))
    section = curve_section(gather_facts(folder))
    assert "99.875" not in section and "laam.json's training result records no binding either." in section
