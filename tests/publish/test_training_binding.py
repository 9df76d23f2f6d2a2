"""The card quotes laam.json's training result (status, memorization) only while its binding matches the folder,
and says why a run is not called memorized."""

from __future__ import annotations

import json
import shutil

from laam.publish.facts import gather_facts
from laam.publish.sections import training_section


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
