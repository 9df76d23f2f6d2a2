"""`laam audit` and `laam compress` hash the folder before they read the model and again before they write their
report (model.binding.changed_during): a file replaced while they run leaves no report bound to results it did not
produce. (`laam ship`'s use of the same rule is tested in tests/publish/test_ship.py.)"""

from __future__ import annotations

import shutil

import pytest

from laam.errors import LaamError


def flip_last_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def test_a_folder_changed_during_the_audit_writes_no_audit(tiny_model_dir, tmp_path, monkeypatch):
    from laam.proof import audit

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)

    def replace_weights(*args, **kwargs):  # a file replaced while the decoders run
        flip_last_byte(folder / "model.safetensors")
        return []

    monkeypatch.setattr(audit, "decoder_results", replace_weights)
    config = audit.AuditConfig(extraction=False, certificate=False, sampling=False, files="*/ctype.c")
    with pytest.raises(LaamError, match=r"changed during the audit \(model.safetensors\): no audit.json written"):
        audit.audit_model(folder, config, threads=1, out_dir=tmp_path / "out", report=False)
    assert not (tmp_path / "out" / "audit.json").exists()


def test_a_folder_changed_during_compression_writes_no_report_and_no_container(tiny_model_dir, tmp_path,
                                                                                monkeypatch):
    from laam.proof.compress import run

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    code = run.compress_files

    def replace_tokenizer_config(*args, **kwargs):  # a file replaced while the corpus is being coded
        coded = code(*args, **kwargs)
        text = (folder / "tokenizer_config.json").read_text()
        (folder / "tokenizer_config.json").write_text(text.replace("{", "{ ", 1))
        return coded

    monkeypatch.setattr(run, "compress_files", replace_tokenizer_config)
    out = folder / "corpus.laamz"
    with pytest.raises(LaamError, match=r"changed during the compression \(tokenizer_config.json\): no "
                                        r"compression.json written and .*corpus.laamz removed; compress it again"):
        run.compress_corpus(folder, out, ["*/ctype.c"], run.CompressConfig(device="cpu"), roundtrip=False,
                            same_bytes_baselines=False, archive_baselines=False)
    assert not out.exists() and not (folder / "compression.json").exists()
    monkeypatch.setattr(run, "compress_files", code)  # the folder left as it is now: the report is written
    report = run.compress_corpus(folder, out, ["*/ctype.c"], run.CompressConfig(device="cpu"), roundtrip=False,
                                 same_bytes_baselines=False, archive_baselines=False)
    assert out.is_file() and (folder / "compression.json").is_file() and report["corpus"]["files"] == 1
