"""The audit hashes the folder before it reads the model and again at the end: a file replaced while it runs
leaves no audit.json bound to results it did not produce."""

from __future__ import annotations

import shutil

import pytest

from laam.errors import LaamError


def test_a_folder_changed_during_the_audit_writes_no_audit(tiny_model_dir, tmp_path, monkeypatch):
    from laam.proof import audit

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)

    def replace_weights(*args, **kwargs):  # a file replaced while the decoders run
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-1] ^= 0x01
        (folder / "model.safetensors").write_bytes(bytes(data))
        return []

    monkeypatch.setattr(audit, "decoder_results", replace_weights)
    config = audit.AuditConfig(extraction=False, certificate=False, sampling=False, files="*/ctype.c")
    with pytest.raises(LaamError, match=r"changed during the audit \(model.safetensors\): no audit.json written"):
        audit.audit_model(folder, config, threads=1, out_dir=tmp_path / "out", report=False)
    assert not (tmp_path / "out" / "audit.json").exists()
