"""margins.npz records the binding of the folder it was computed on and is read only while that folder matches;
the teacher-forcing loop and the margin threshold it is judged by live in engine.forcing, which the training
checks and the proof both use (proof does not reach into train's checks or settings for them)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from laam.errors import LaamError
from laam.model.binding import report_binding
from laam.proof.margin import (
    MARGINS_FILE,
    MARGINS_FORMAT,
    BodyMargins,
    pack_margins,
    read_margins,
    unpack_margins,
    write_margins,
)
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


def _awkward() -> BodyMargins:
    """Two records, a gap in the second's positions, ties both ways (top-1 the true token or not), a NaN margin,
    and a token id past uint16."""
    record = np.array([0, 0, 0, 2, 2, 2, 2], dtype=np.int64)
    position = np.array([7, 8, 9, 3, 4, 6, 7], dtype=np.int64)
    margin = np.array([1.5, 0.0, -2.25, 0.0, np.nan, 3.0e-7, 12.0], dtype=np.float32)
    correct = np.array([True, True, False, False, True, True, True])
    return BodyMargins(record, position, np.array([5, 70_000, 9, 1, 2, 3, 4]), np.array([1, 2, 3, 4, 5, 6, 7]),
                       margin, correct)


def test_the_compact_layout_gives_back_every_column_exactly():
    m = _awkward()
    packed = pack_margins(m)
    assert not {"record", "position", "correct", "margin"} & set(packed)  # implied, or stored otherwise
    assert packed["runs"].tolist() == [[0, 7, 3], [2, 3, 2], [2, 6, 2]]  # the gap starts a run
    assert packed["tied_correct"].tolist() == [True, False, True]  # at the two zero margins and the NaN
    assert packed["target"].dtype == np.uint32 and packed["rival"].dtype == np.uint8  # chosen from the values
    back = unpack_margins(packed)
    for name in ("record", "position", "target", "rival", "correct"):
        assert np.array_equal(getattr(back, name), getattr(m, name)), name
    assert back.margin.dtype == np.float32 and back.margin.tobytes() == m.margin.tobytes()  # bit for bit


def test_a_vocabulary_of_8192_is_stored_in_uint16_and_the_file_shrinks(tiny_model_dir, tmp_path):
    rng = np.random.default_rng(0)
    n = 20_000
    m = BodyMargins(np.repeat(np.arange(10), n // 10), np.tile(np.arange(40, 40 + n // 10), 10),
                    rng.integers(0, 8192, n), rng.integers(0, 8192, n),
                    rng.lognormal(2.0, 0.5, n).astype(np.float32), np.ones(n, dtype=bool))
    paths = [f"f{i}.c" for i in range(10)]
    path = write_margins(m, paths, tmp_path / "compact", report_binding(tiny_model_dir))
    with np.load(path) as saved:
        assert saved["target"].dtype == np.uint16 and saved["runs"].shape == (10, 3)
    np.savez_compressed(tmp_path / "first.npz", paths=np.array(paths), record=m.record, position=m.position,
                        target=m.target, rival=m.rival, margin=m.margin, correct=m.correct)
    assert path.stat().st_size < 0.8 * (tmp_path / "first.npz").stat().st_size


def test_a_margins_file_of_the_first_layout_is_still_read(tiny_model_dir, tmp_path):
    m = _margins()
    np.savez_compressed(tmp_path / MARGINS_FILE, paths=np.array(["a.c", "b.c"]), record=m.record,
                        position=m.position, target=m.target, rival=m.rival, margin=m.margin, correct=m.correct,
                        binding=np.array(json.dumps(report_binding(tiny_model_dir))))
    margins, paths = read_margins(tmp_path / MARGINS_FILE, tiny_model_dir)
    assert paths == ["a.c", "b.c"] and margins.position.tolist() == [5, 6, 4]
    assert margins.margin.tolist() == [3.5, 0.25, 9.0]


def test_a_margins_file_of_a_later_layout_is_refused_in_one_line(tiny_model_dir, tmp_path):
    arrays = {**pack_margins(_margins()), "format": np.array(MARGINS_FORMAT + 1)}
    np.savez_compressed(tmp_path / MARGINS_FILE, paths=np.array(["a.c", "b.c"]), **arrays,
                        binding=np.array(json.dumps(report_binding(tiny_model_dir))))
    with pytest.raises(LaamError, match=f"not a readable margin certificate \\(format {MARGINS_FORMAT + 1}, "):
        read_margins(tmp_path / MARGINS_FILE, tiny_model_dir)


def test_the_card_cites_margins_npz_only_when_bound_and_counting_the_audits_positions(tiny_model_dir, tmp_path):
    """The card cites margins.npz (read through read_margins) with its count of positions when its binding matches
    the folder and it holds the quoted audit's certificate's positions; one of other files, or of another run, is
    named as not quoted and not copied; a push refuses a stale one."""
    from laam.publish.card import render_card, write_card
    from laam.publish.facts import CardConfig, find_margins, gather_facts
    from laam.publish.hub import plan_push
    from tests.publish.test_card import AUDIT, bound, make_run

    model = make_run(tiny_model_dir, tmp_path, audit=False) / "model"
    margin = {"threshold": 1.0, "body_tokens": 3, "wrong_tokens": 0, "min_margin": 0.25,
              "min_margin_at": {"path": "a.c", "position": 6, "line": 1, "true": "x", "rival": "y"},
              "under_threshold": 1, "low_listed": 0, "sequential": {"agrees": 0, "differs": 0, "diverged earlier": 0},
              "histogram": {"bins": ["< 0", ">= 0"], "counts": [0, 3]}}
    audit = {**AUDIT, "margin": margin,
             "files": [{"path": "a.c", "min_margin": 0.25}, {"path": "b.c", "min_margin": 9.0}]}
    (model / "audit").mkdir()
    (model / "audit" / "audit.json").write_text(json.dumps(bound(audit, model)))
    write_margins(_margins(), ["a.c", "b.c"], model / "audit", report_binding(model))
    card = render_card(gather_facts(model), CardConfig())
    assert "Every position's margin: [`margins.npz`](margins.npz), 3 positions of 2 files (the certificate's count), " \
           "bound to these weights" in card
    assert "`audit.json` and `margins.npz`;" in card and "Not quoted" not in card

    other = report_binding(model)
    other["files"]["model.safetensors"] = "0" * 64  # margins of other weights
    write_margins(_margins(), ["a.c", "b.c"], model / "audit", other)
    card = render_card(gather_facts(model), CardConfig())
    assert "- Not quoted: `model/audit/margins.npz`: not computed on these files (model.safetensors changed: " in card
    assert "The per-position margins (`margins.npz`) are not cited" in card and "](margins.npz)" not in card
    shutil.copy(model / "audit" / MARGINS_FILE, model / MARGINS_FILE)  # a stale copy at the top: pushed, it is refused
    assert [p for p in plan_push(model, "laam-test/tiny").problems if "margins.npz was not computed on" in p]
    write_card(model, CardConfig(original_call=False))
    assert not (model / MARGINS_FILE).exists()  # not quoted, so it does not travel with these weights

    write_margins(_margins(), ["a.c", "b.c"], model / "audit", report_binding(model))
    write_card(model, CardConfig(original_call=False))
    assert (model / MARGINS_FILE).read_bytes() == (model / "audit" / MARGINS_FILE).read_bytes()
    assert not [p for p in plan_push(model, "laam-test/tiny").problems if MARGINS_FILE in p]
    counted = find_margins(model, model / "audit" / "audit.json", {**audit, "margin": {**margin, "body_tokens": 4}})
    assert counted.report is None and counted.notes == [
        "`model/audit/margins.npz`: it holds 3 positions, while the quoted audit's certificate counts 4: not the same "
        "run", "`model/margins.npz`: it holds 3 positions, while the quoted audit's certificate counts 4: not the same "
        "run"]


def test_the_card_says_whether_an_uncited_margins_file_was_found():
    """Not cited: the sentence points at a "Not quoted" line only when one was found and left out."""
    from laam.publish.sections import margins_sentence

    assert margins_sentence(None, left_out=True).endswith("(one found is named under \"Not quoted\").")
    assert margins_sentence(None).endswith("(none was found beside the audit or in the model or run folder).")
    assert "Not quoted" not in margins_sentence(None)


def test_a_push_refuses_bound_margins_of_another_audit_of_the_same_weights(tiny_model_dir, tmp_path):
    """margins.npz bound to these weights but counting other positions than the folder's audit.json certificate is
    another audit's: the card would not cite it, so a push does not upload it either (one rule: facts)."""
    from laam.publish.hub import plan_push
    from tests.publish.test_card import AUDIT, bound, make_run

    model = make_run(tiny_model_dir, tmp_path, audit=False) / "model"
    write_margins(_margins(), ["a.c", "b.c"], model, report_binding(model))  # 3 positions
    audit = {**AUDIT, "margin": {"body_tokens": 4}}
    (model / "audit.json").write_text(json.dumps(bound(audit, model)))
    problems = [p for p in plan_push(model, "laam-test/tiny").problems if p.startswith("margins.npz")]
    assert problems == ["margins.npz: it holds 3 positions, while audit.json's certificate counts 4: not the same run: "
                        "rerun `laam card`, which copies the audit's own"]
    (model / "audit.json").write_text(json.dumps(bound({**audit, "margin": {"body_tokens": 3}}, model)))
    assert not [p for p in plan_push(model, "laam-test/tiny").problems if p.startswith("margins.npz")]
