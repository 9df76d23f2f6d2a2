"""The BOM cites margins.npz and ship.json by the card's rule (publish.facts find_margins, find_ship): bound to
these weights, each is an `evidence` reference with its SHA-256; of other weights, or missing, it is not cited and
a `laam:<file>` property on the model says why."""

from __future__ import annotations

import json
import shutil

import numpy as np

from laam.io import sha256_file
from laam.model.binding import report_binding
from laam.proof.margin import MARGINS_FILE, BodyMargins, write_margins
from laam.publish.bom import bom_json, validate_bom
from laam.publish.facts import SHIP_FILE, CardConfig, gather_facts
from tests.publish.test_card import AUDIT, bound, make_run


def _margins() -> BodyMargins:
    """Three body positions of two records, as proof.margin measures them."""
    return BodyMargins(np.array([0, 0, 1]), np.array([5, 6, 4]), np.array([7, 8, 9]), np.array([1, 2, 3]),
                       np.array([3.5, 0.25, 9.0], dtype=np.float32), np.array([True, True, True]))


def _model(bom: dict) -> tuple[dict[str, dict], dict[str, str]]:
    """The model component's evidence references (by url) and its laam: properties."""
    model = bom["metadata"]["component"]
    refs = {ref["url"]: ref for ref in model.get("externalReferences", []) if ref["type"] == "evidence"}
    return refs, {p["name"]: p["value"] for p in model.get("properties", [])}


def _bom(model) -> dict:
    document = bom_json(gather_facts(model), CardConfig(original_call=False))
    validate_bom(document)  # the references and notes keep it valid CycloneDX 1.6
    return document


def test_the_bom_cites_margins_and_ship_only_when_bound_to_these_weights(tiny_model_dir, tmp_path):
    model = make_run(tiny_model_dir, tmp_path, audit=False) / "model"
    refs, properties = _model(_bom(model))
    assert refs == {}
    assert properties[f"laam:{MARGINS_FILE}"] == properties[f"laam:{SHIP_FILE}"] == "not cited: none found"

    (model / "audit").mkdir()
    audit = {**AUDIT, "margin": {"body_tokens": 3}}
    (model / "audit" / "audit.json").write_text(json.dumps(bound(audit, model)))
    margins = write_margins(_margins(), ["a.c", "b.c"], model / "audit", report_binding(model))
    ship = {"dtype": "float32", "reason": "asked", "binding": report_binding(model)}
    (model / SHIP_FILE).write_text(json.dumps(ship))
    refs, properties = _model(_bom(model))
    assert set(refs) == {"audit/margins.npz", SHIP_FILE}
    assert refs["audit/margins.npz"]["hashes"] == [{"alg": "SHA-256", "content": sha256_file(margins)}]
    assert refs[SHIP_FILE]["hashes"] == [{"alg": "SHA-256", "content": sha256_file(model / SHIP_FILE)}]
    assert f"laam:{MARGINS_FILE}" not in properties and f"laam:{SHIP_FILE}" not in properties
    shutil.copy(margins, model / MARGINS_FILE)  # the card's copy at the folder's top, which a push uploads
    refs, _ = _model(_bom(model))
    assert set(refs) == {MARGINS_FILE, SHIP_FILE}
    (model / MARGINS_FILE).unlink()

    other = report_binding(model)
    other["files"]["model.safetensors"] = "0" * 64  # measured on other weights
    write_margins(_margins(), ["a.c", "b.c"], model / "audit", other)
    (model / SHIP_FILE).write_text(json.dumps({**ship, "binding": other}))
    refs, properties = _model(_bom(model))
    assert refs == {}
    assert properties[f"laam:{MARGINS_FILE}"].startswith(
        "not cited: `model/audit/margins.npz`: not computed on these files (model.safetensors changed")
    assert properties[f"laam:{SHIP_FILE}"].startswith(
        "not cited: `ship.json`: not computed on these files (model.safetensors changed")
