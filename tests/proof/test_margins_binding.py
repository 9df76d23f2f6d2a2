"""margins.npz records the binding of the folder it was computed on and is read only while that folder matches;
the teacher-forcing loop and the margin threshold it is judged by live in engine.forcing, which the training
checks and the proof both use (proof does not reach into train's checks or settings for them)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from laam.errors import LaamError
from laam.model.binding import report_binding
from laam.proof.margin import MARGINS_FILE, BodyMargins, read_margins, write_margins
from tests.test_architecture import import_graph


def _margins() -> BodyMargins:
    ints = np.array([0, 0, 1], dtype=np.int64)
    return BodyMargins(ints, np.array([5, 6, 4]), np.array([7, 8, 9]), np.array([1, 2, 3]),
                       np.array([3.5, 0.25, 9.0], dtype=np.float32), np.array([True, True, True]))


def test_margins_are_read_only_for_the_folder_they_were_computed_on(tiny_model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    path = write_margins(_margins(), ["a.c", "b.c"], tmp_path / "audit", report_binding(folder))
    margins, paths = read_margins(path, folder)
    assert paths == ["a.c", "b.c"] and margins.margin.tolist() == [3.5, 0.25, 9.0]
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # other weights of the same shapes
    weights.write_bytes(bytes(data))
    with pytest.raises(LaamError, match="was not computed on .* model.safetensors changed"):
        read_margins(path, folder)


def test_margins_without_a_binding_are_refused(tiny_model_dir, tmp_path):
    m = _margins()
    np.savez_compressed(tmp_path / MARGINS_FILE, paths=np.array(["a.c", "b.c"]), record=m.record,
                        position=m.position, target=m.target, rival=m.rival, margin=m.margin, correct=m.correct)
    with pytest.raises(LaamError, match="records no binding"):
        read_margins(tmp_path / MARGINS_FILE, tiny_model_dir)


def test_the_margin_loop_and_threshold_serve_train_and_proof_from_the_engine():
    graph = import_graph()
    for module in ("laam.proof.margin", "laam.proof.audit", "laam.publish.sections"):
        assert not graph[module] & {"laam.train.memorization", "laam.train.config"}, module
    assert "laam.engine.forcing" in graph["laam.train.memorization"] and "laam.engine.forcing" in graph[
        "laam.proof.margin"]
