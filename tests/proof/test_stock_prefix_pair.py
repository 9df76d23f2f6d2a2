"""The audit's decoders on the model of the prefix pair and the Latin-1 file (tests/model/test_prefix_paths.py):
linux/drivers/sound/Readme and Readme.linux come back from their bare paths through stock transformers, and
linux/drivers/char/defkeymap.map byte for byte from every decoder, as audit.json records in one run."""

from __future__ import annotations

import json
import shutil

import pytest

from laam.proof.audit import AuditConfig, audit_model
from tests.model.test_prefix_paths import KEYMAP, README, README_LINUX, pair_corpus, pair_model_dir  # noqa: F401


def test_every_decoder_gives_back_the_prefix_pair_and_the_latin1_bytes(pair_model_dir, tmp_path):  # noqa: F811
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'laam[gguf]')")
    from laam.publish.gguf import export_gguf

    folder = tmp_path / "model"
    shutil.copytree(pair_model_dir, folder)
    export_gguf(folder, folder / "pair.gguf")
    audit_model(folder, AuditConfig(extraction=False, certificate=False, sampling=False, stock=-1), threads=1,
                report=False)
    decoders = json.loads((folder / "audit" / "audit.json").read_text())["decoders"]
    assert [d["decoder"] for d in decoders] == ["laam", "transformers", "gguf pair.gguf"]
    for d in decoders:
        assert (d["files"], d["exact"], d["failed"]) == (3, 3, []), d
    rows = json.loads((folder / "audit" / "audit.json").read_text())["files"]
    assert {r["path"] for r in rows} == {README, README_LINUX, KEYMAP}
