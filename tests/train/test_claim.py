"""laam.json's `status: memorized` stands only on checks that say so in float32 and on a passing `--verify`, and
the training result records the binding (model.binding) of the folder it describes."""

from __future__ import annotations

import json

import pytest

from laam.model.binding import binding_problems
from laam.model.config import ModelConfig
from laam.model.presets import PRESETS
from laam.train.claim import claimed_status
from laam.train.config import TrainConfig
from laam.train.memorization import RegenerationReport

CHECK = {"memorized": 1.0, "secure": 1.0, "body_correct": 90, "body_total": 90, "body_secure": 90}
SHORT = {**CHECK, "memorized": 89 / 90, "secure": 89 / 90, "body_correct": 89, "body_secure": 89}
ALL_EXACT = {"files": 12, "exact": 12, "wrong": {}}


def test_memorized_needs_a_float32_check_and_a_passing_verify():
    assert claimed_status("memorized", 1.0, "float32", None, ALL_EXACT) == ("memorized", [])
    assert claimed_status("memorized", 1.0, "float32", None, None) == ("memorized", [])  # --verify not asked for
    assert claimed_status("memorized", 1.0, "bfloat16", CHECK, ALL_EXACT) == ("memorized", [])
    status, why = claimed_status("memorized", 1.0, "bfloat16", None, ALL_EXACT)
    assert status == "finished" and "no float32 check" in why[0]
    status, why = claimed_status("memorized", 1.0, "bfloat16", SHORT, ALL_EXACT)
    assert status == "finished" and "89 of 90" in why[0]
    status, why = claimed_status("memorized", 1.0, "float32", None, {"files": 12, "exact": 11, "wrong": {"a": 9}})
    assert status == "finished" and why == ["--verify regenerated 11 of 12 files exactly"]
    assert claimed_status("max-time", 1.0, "bfloat16", None, None) == ("max-time", [])  # nothing claimed to lower


def _train(tiny_corpus, tiny_tokenizer_dir, tmp_path, **model):
    from laam.train.loop import train

    model_config = ModelConfig(**{**PRESETS["tiny"]["model"], **model})
    config = TrainConfig(**{**PRESETS["tiny"]["train"], "threads": 1, "verify": True})
    result = train(model_config, config, tiny_corpus, tiny_tokenizer_dir, tmp_path / "run", tmp_path, progress=False)
    return result, json.loads((result.model_dir / "laam.json").read_text())["training"]


def test_a_failed_verify_lowers_the_status_and_the_result_is_bound(tiny_corpus, tiny_tokenizer_dir, tmp_path,
                                                                    monkeypatch):
    import laam.train.loop as loop

    def one_file_wrong(model, files, *args, **kwargs):
        return RegenerationReport(len(files), len(files) - 1, 100, {files[0].path: 7})

    monkeypatch.setattr(loop, "verify_records", one_file_wrong)
    result, training = _train(tiny_corpus, tiny_tokenizer_dir, tmp_path)
    assert training["memorized"] == 1.0  # the teacher-forced check reached the target …
    assert result.status == training["status"] == "finished"  # … but a file did not come back
    assert training["status_lowered"] == [f"--verify regenerated {len(tiny_corpus.files) - 1} of "
                                          f"{len(tiny_corpus.files)} files exactly"]
    assert training["check_dtype"] == "float32" and training["binding"]["dtype"] == "float32"
    assert binding_problems(training, result.model_dir) == []  # bound to the weights beside it
    (result.model_dir / "model.safetensors").write_bytes(b"other weights")
    assert any("model.safetensors changed" in p for p in binding_problems(training, result.model_dir))


def test_a_bf16_check_is_confirmed_in_float32(tiny_corpus, tiny_tokenizer_dir, tmp_path, monkeypatch):
    """Under bf16 mixed precision the memorized verdict is checked again without autocast; here that float32
    check is made to miss a token, so the run is not memorized."""
    import laam.train.loop as loop

    real = loop.measure_memorization
    confirmations = []

    def float32_misses_one(model, window_set, pad_id, batch_size=64, rank=0, world=1, device=None, autocast=None,
                           min_margin=0.0):
        counts = real(model, window_set, pad_id, batch_size, rank, world, device, autocast, min_margin)
        if autocast is None:
            confirmations.append(counts["body_total"])
            counts = {**counts, "body_correct": counts["body_correct"] - 1, "body_secure": counts["body_secure"] - 1}
        return counts

    from accelerate.state import AcceleratorState

    monkeypatch.setattr(loop, "measure_memorization", float32_misses_one)
    AcceleratorState._reset_state(True)  # accelerate keeps one precision per process: the earlier runs' float32
    try:
        result, training = _train(tiny_corpus, tiny_tokenizer_dir, tmp_path, precision="bf16")
    finally:
        AcceleratorState._reset_state(True)
    if training["memorized"] < 1.0:
        pytest.fail(f"the bf16 tiny run did not reach memorized in bf16 ({training['memorized']})")
    assert len(confirmations) == 1 and training["check_dtype"] == training["binding"]["dtype"] == "bfloat16"
    assert training["status"] == "finished" and "in float32" in training["status_lowered"][0]
    assert training["float32_confirmation"]["body_correct"] == confirmations[0] - 1
