"""The audit runs the decoders a reader runs, from the bare path, in the same run as laam's engine (proof.stock):
audit.json records each one's files exact and which failed, and the card gives each its own line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from laam.cli import app
from laam.data.corpus import CorpusFile
from laam.proof.audit import AuditConfig, audit_model
from laam.proof.stock import TRANSFORMERS_CALL, choose_files
from tests.data.test_tokenizer import _clean_up_spaces, _cleaned_up


def _file(path: str, encoding: str = "utf-8") -> CorpusFile:
    return CorpusFile(path, b"x", encoding, "GPL-2.0-only")


def test_a_sample_is_named_and_keeps_the_files_stock_decoding_gets_wrong_first():
    files = [_file(f"linux/lib/f{i}.c") for i in range(10)] + [
        _file("linux/drivers/sound/Readme"), _file("linux/drivers/sound/Readme.linux"),
        _file("linux/drivers/char/defkeymap.map", "latin-1")]
    paths = [f.path for f in files]
    chosen, selection = choose_files(files, 3, paths)
    assert {"linux/drivers/sound/Readme", "linux/drivers/char/defkeymap.map"} <= {f.path for f in chosen}
    assert selection["kind"] == "sample" and selection["drawn"] == 3 and selection["of"] == 13
    assert len(chosen) == selection["files"] == 5 and "drawn at random (seed 0)" in selection["rule"]
    assert choose_files(files, 3, paths)[0] == chosen  # seeded: the same sample every time
    assert choose_files(files, -1, paths)[1] == {"kind": "all", "files": 13}
    assert choose_files(files, 13, paths)[1] == {"kind": "all", "files": 13}


@pytest.fixture(scope="module")
def with_gguf(tiny_model_dir, tmp_path_factory) -> Path:
    """A copy of the tiny model with its f32 GGUF (and regenerate_gguf.py) written beside the weights."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'laam[gguf]')")
    from laam.publish.gguf import export_gguf

    folder = tmp_path_factory.mktemp("stock") / "model"
    shutil.copytree(tiny_model_dir, folder)
    export_gguf(folder, folder / "tiny.gguf")
    return folder


def _audit(folder: Path, **config) -> dict:
    settings = {"extraction": False, "certificate": False, "sampling": False, "stock": -1, **config}
    audit_model(folder, AuditConfig(**settings), threads=1, report=False)
    return json.loads((folder / "audit" / "audit.json").read_text())


def test_every_decoder_gives_every_file_back_and_the_card_says_so_line_by_line(with_gguf, tiny_corpus):
    audit = _audit(with_gguf)
    decoders = {d["decoder"]: d for d in audit["decoders"]}
    assert list(decoders) == ["laam", "transformers", "gguf tiny.gguf"]
    for d in decoders.values():
        assert (d["files"], d["exact"], d["failed"], d["not_run"]) == (12, 12, [], None), d["decoder"]
        assert d["selection"] == {"kind": "all", "files": 12}
    assert decoders["transformers"]["call"] == TRANSFORMERS_CALL
    result = CliRunner().invoke(app, ["card", "--model", str(with_gguf), "--quiet", "--no-original-call"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    card = (with_gguf / "README.md").read_text()
    calls = ("laam generate --model MODEL --path PATH", TRANSFORMERS_CALL, "python regenerate_gguf.py tiny.gguf PATH")
    for call in calls:
        assert f"- `{call}`: 12 of 12 files byte for byte." in card
    bom = json.loads((with_gguf / "bom.cdx.json").read_text())
    metrics = bom["metadata"]["component"]["modelCard"]["quantitativeAnalysis"]["performanceMetrics"]
    assert [(m["value"], m["slice"].split(" (")[0]) for m in metrics if m["type"] == "files_byte_exact"] == [
        ("12/12", call) for call in calls]
    # a GGUF replaced since the audit: its line is not quoted any more, the others still are
    gguf = with_gguf / "tiny.gguf"
    data = bytearray(gguf.read_bytes())
    data[-1] ^= 0x01
    gguf.write_bytes(bytes(data))
    result = CliRunner().invoke(app, ["card", "--model", str(with_gguf), "--quiet", "--no-original-call"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    card = (with_gguf / "README.md").read_text()
    decoded = decoders["gguf tiny.gguf"]["sha256"][:12]
    assert f"- `{calls[2]}`: not quoted: the file decoded then (SHA-256 {decoded}" in card
    assert f"- `{TRANSFORMERS_CALL}`: 12 of 12 files byte for byte." in card


def test_a_stock_decoder_that_differs_is_reported_apart_from_laams(with_gguf, tiny_corpus, tmp_path):
    """tokenizer_config.json's clean-up flag changes stock decoding (" ?" -> "?") but not laam's: the audit's
    transformers line names the files it changed, laam's line stays whole, and a sample is named as such."""
    folder = tmp_path / "model"
    shutil.copytree(with_gguf, folder, ignore=shutil.ignore_patterns("*.gguf", "audit"))
    _clean_up_spaces(folder)
    changed = _cleaned_up(tiny_corpus)
    assert changed  # the corpus has records the flag changes
    audit = _audit(folder, stock=2)
    laam, transformers = audit["decoders"]
    assert (laam["exact"], laam["files"]) == (12, 12)
    sample = transformers["selection"]
    assert sample["kind"] == "sample" and sample["drawn"] == 2 and transformers["files"] == 2
    audit = _audit(folder)
    transformers = audit["decoders"][1]
    assert sorted(transformers["failed"]) == sorted(changed) and transformers["exact"] == 12 - len(changed)


def test_a_decoder_that_cannot_run_is_recorded_with_the_reason(tmp_path):
    from laam.proof.stock import run_gguf

    gguf = tmp_path / "alone.gguf"
    gguf.write_bytes(b"GGUF")
    result = run_gguf(gguf, [_file("linux/lib/a.c")], {"kind": "all", "files": 1})
    assert result.not_run == "no regenerate_gguf.py beside alone.gguf" and (result.files, result.exact) == (0, 0)
