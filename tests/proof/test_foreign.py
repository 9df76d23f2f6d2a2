"""`laam audit --model ANY`: a model of another architecture and tokenizer, trained by the test on three kernel files,
is caught on exactly those; untrained, on none; a laam folder audited as any model gives `laam audit`'s files."""

from __future__ import annotations

import json

import pytest

from laam.errors import LaamError
from laam.proof.foreign import ForeignAuditConfig, audit_any_model

TRAINED = ("linux/lib/Makefile", "linux/lib/open.c", "linux/lib/wait.c")


@pytest.fixture(scope="module")
def gpt2_folders(tiny_corpus, tmp_path_factory):
    from tests.proof.foreign_model import gpt2_folder

    texts = [f.text for f in tiny_corpus.files]
    trained, untrained = tmp_path_factory.mktemp("gpt2-trained"), tmp_path_factory.mktemp("gpt2-untrained")
    accuracy = gpt2_folder(texts, [f.text for f in tiny_corpus.files if f.path in TRAINED], trained)
    assert accuracy == 1.0, f"the control did not memorize its files (accuracy {accuracy})"
    gpt2_folder(texts, [], untrained)
    return trained, untrained


def test_trained_gpt2_is_caught_on_its_files_only(gpt2_folders, tiny_corpus, tmp_path):
    trained, _ = gpt2_folders
    audit, written = audit_any_model(str(trained), tiny_corpus, ForeignAuditConfig(), tmp_path / "out")
    assert sorted(audit["summary"]["caught"]) == sorted(TRAINED)  # recall 1.0, no false file
    assert audit["document_format"] == "file text" and audit["context"] == 512
    assert audit["summary"]["gpl2_traced_bytes"] > 0 and audit["licenses"]["GPL-2.0-only"]["traced_bytes"] > 0
    assert audit["settings"]["pythia"]["exact"] >= 3
    rows = {r["path"]: r for r in audit["files"]}
    assert all(rows[p]["longest_span"] >= 50 for p in TRAINED)
    assert json.loads(written["json"].read_text())["summary"]["caught"] == audit["summary"]["caught"]
    assert written["csv"].read_text().startswith("path,license,setting,offset")
    assert "<mark>" in written["html"].read_text()


def test_untrained_gpt2_is_caught_on_nothing(gpt2_folders, tiny_corpus, tmp_path):
    _, untrained = gpt2_folders
    audit, _ = audit_any_model(str(untrained), tiny_corpus, ForeignAuditConfig(samples=1), tmp_path / "out")
    assert audit["summary"]["caught"] == [] and audit["summary"]["exact"] == 0
    assert audit["summary"]["traced_bytes"] == 0
    assert audit["settings"]["pythia sampled"]["samples"] == audit["settings"]["pythia"]["samples"] > 0


def test_laam_folder_as_any_model_gives_laam_audits_files(tiny_model_dir, tiny_corpus, tmp_path):
    from laam.proof.audit import AuditConfig, audit_model

    own = audit_model(tiny_model_dir, AuditConfig(extraction=False, certificate=False), out_dir=tmp_path / "own",
                      report=False).audit
    verbatim = sorted(r["path"] for r in own["files"] if r["verbatim"])
    audit, _ = audit_any_model(str(tiny_model_dir), tiny_corpus, ForeignAuditConfig(whole_files=True),
                               tmp_path / "any")
    assert audit["document_format"] == "laam records"
    assert verbatim and sorted(r["path"] for r in audit["files"] if r["verbatim"]) == verbatim


def test_pickled_weights_are_refused(tmp_path, tiny_corpus):
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(LaamError, match="pickled"):
        audit_any_model(str(tmp_path), tiny_corpus)


def test_unknown_setting_is_refused():
    with pytest.raises(LaamError, match="unknown setting"):
        ForeignAuditConfig(settings=("carlini-7",))


def test_audit_command_audits_any_model(gpt2_folders, tarball, tmp_path):
    from typer.testing import CliRunner

    from laam.cli import app
    from tests.conftest import TINY_EXCLUDE, TINY_INCLUDE

    trained, _ = gpt2_folders
    args = ["audit", "--model", str(trained), "--corpus", str(tarball), "--include", TINY_INCLUDE[0], "--exclude",
            TINY_EXCLUDE[0], "--cache", str(tmp_path), "--out", str(tmp_path / "out"), "--setting", "pythia",
            "--setting", "carlini-100", "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert list(audit["settings"]) == ["pythia", "carlini-100"] and len(audit["summary"]["caught"]) == 3
    assert "files caught: 3 of 12" in result.stdout
    refused = CliRunner().invoke(app, ["audit", "--model", str(trained), "-q"])
    assert isinstance(refused.exception, LaamError) and "give --corpus" in str(refused.exception)
