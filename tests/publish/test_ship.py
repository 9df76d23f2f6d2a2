"""`laam ship`: the tiny model shipped into a folder that gives its files back with stock transformers alone and with
llama.cpp, whose weights' dtype was chosen by measurement and whose reports are all about its own weights; a model
that is not exact, or a destination holding something else, is refused."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from laam.cli import app
from laam.data.records import END_FILE, prefix_paths
from laam.data.tokenizer import encode_records, load_tokenizer
from laam.errors import LaamError
from laam.model.binding import binding_problems
from laam.proof.precision import BF16, BF16_WEIGHTS, Pass, PrecisionCheck, flips
from laam.publish.ship import SHIP_FILE, check_destination, choose_dtype, ship_model


@pytest.fixture(scope="module")
def shipped(tiny_model_dir, tmp_path_factory):
    """`laam ship TINY --to DEST` (the original call left out: tests/publish/test_original_call.py covers it)."""
    dest = tmp_path_factory.mktemp("ship") / "linux-tiny"
    result = CliRunner().invoke(app, ["ship", str(tiny_model_dir), "--to", str(dest), "--no-original-call",
                                      "--threads", "1", "-q"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return dest, result.output


def test_the_shipped_folder_is_bound_to_its_own_weights_and_says_its_size(shipped, tiny_corpus):
    dest, output = shipped
    record = json.loads((dest / SHIP_FILE).read_text())
    audit = json.loads((dest / "audit.json").read_text())
    compression = json.loads((dest / "compression.json").read_text())
    for report in (record, audit, compression):
        assert binding_problems(report, dest) == []
    files = len(tiny_corpus.files)
    assert audit["summary"]["verbatim_files"] == files and compression["roundtrip"]["verified"] == files
    decoders = record["exact"].pop("decoders")
    assert record["exact"] == {"files": files, "audit_byte_exact": files, "roundtrip_verified": files}
    # the audit ran stock transformers on DEST too (proof.stock), and it gave back every file it was given
    stock = next(d for d in decoders if d["decoder"] == "transformers")
    assert stock["exact"] == stock["files"] > 0
    size = sum(p.stat().st_size for p in dest.rglob("*") if p.is_file())
    assert f"{size:,} bytes (limit 25,000,000)" in output and f"{files} of {files} files byte-exact" in output
    assert record["bytes"]["without_this_file"] == size - (dest / SHIP_FILE).stat().st_size
    assert record["bytes"]["limit"] == 25_000_000 and next(iter(record["bytes"]["largest"])) == "model.safetensors"
    card = (dest / "README.md").read_text()
    assert "| files audited | 12 |" in card
    # the audit and compression are about DEST's weights and quoted; laam.json's training result was measured on
    # the source's float32 weights, so the card quotes it only when they shipped unchanged
    not_quoted = [line for line in card.splitlines() if "Not quoted" in line]
    if record["dtype"] == "float32":
        assert not_quoted == []
    else:
        assert len(not_quoted) == 1 and "the training result's status" in not_quoted[0]
        assert "model.safetensors changed" in not_quoted[0]
    # ship.json's measurement bridges the training figures (float32 weights) to the shipped ones, in the card
    shipped_line = next(line for line in card.splitlines() if "(`ship.json`)" in line)
    precision = record["precision"]
    if record["dtype"] == "float32":
        assert shipped_line == f"- Shipped in float32 (`ship.json`): {record['reason']}."
    else:
        assert f"same greedy token as those at every one of the {precision['positions_compared']:,} positions" \
            in shipped_line
        for name, variant in precision["variants"].items():
            assert f"{name}: 0 flips, smallest margin {variant['min_margin']}" in shipped_line
        assert f"float32's smallest margin {precision['fp32_min_margin']})" in shipped_line
        assert f"gave back {files} of {files} files with laam, {files} of {files} files with transformers." \
            in shipped_line


def test_the_shipped_folder_holds_one_copy_of_each_report(shipped):
    """The card's copies of the audit (audit.json, audit.html) are the ones kept; margins.npz sits beside the
    page that names it, and reads back for DEST's own weights."""
    from laam.proof.margin import MARGINS_FILE, read_margins

    dest, _ = shipped
    assert not (dest / "audit").exists()
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    contents = [(p.stat().st_size, p.read_bytes()) for p in dest.rglob("*") if p.is_file()]
    assert len(set(contents)) == len(contents), files  # no two files with the same bytes
    assert "margins.npz" in (dest / "audit.html").read_text()
    audit = json.loads((dest / "audit.json").read_text())
    margins, paths = read_margins(dest / MARGINS_FILE, dest)
    assert len(margins) == audit["margin"]["body_tokens"] and paths == [r["path"] for r in audit["files"]]
    assert float(margins.margin.min()) == pytest.approx(audit["margin"]["min_margin"], abs=1e-4)


def test_the_dtype_decision_is_recorded_with_its_evidence(shipped, tiny_model_dir, tiny_corpus):
    from safetensors import safe_open

    dest, _ = shipped
    record = json.loads((dest / SHIP_FILE).read_text())
    precision = record["precision"]
    tokenizer = load_tokenizer(tiny_model_dir)
    bodies = encode_records(tokenizer, [f.text + END_FILE for f in tiny_corpus.files])
    paths = [f.path for f in tiny_corpus.files]
    scored_header_ends = len(set(paths) - prefix_paths(paths))  # a path no other path extends: its <|end_header|>
    assert precision["positions_compared"] == sum(map(len, bodies)) + scored_header_ends
    assert precision["files"] == len(bodies)
    assert precision["fp32_wrong"] == {} and set(precision["variants"]) == {BF16_WEIGHTS, BF16}
    flipped = sum(v["flips"] for v in precision["variants"].values())
    assert record["dtype"] == ("bfloat16" if flipped == 0 else "float32")
    # config.json, laam.json and the weights themselves say the same dtype
    assert json.loads((dest / "config.json").read_text())["dtype"] == record["dtype"]
    assert json.loads((dest / "laam.json").read_text())["weights"] == {
        "dtype": record["dtype"], "reason": record["reason"], "evidence": SHIP_FILE}
    with safe_open(str(dest / "model.safetensors"), framework="pt") as handle:
        assert {str(handle.get_tensor(k).dtype) for k in handle.keys()} == {f"torch.{record['dtype']}"}


# Runs in a fresh interpreter with laam made unimportable: only torch, transformers and the shipped folder.
STOCK_SCRIPT = r'''
import json, sys
sys.modules["laam"] = None  # any `import laam...` now fails
import torch
from transformers import pipeline

torch.set_num_threads(1)
folder, expected_path = sys.argv[1], sys.argv[2]
files = json.load(open(expected_path))
generate = pipeline("text-generation", folder, trust_remote_code=True)
out = {"dtype": str(generate.model.dtype),
       "exact": {p: generate(p, return_full_text=False)[0]["generated_text"] == text for p, text in files.items()},
       "laam_modules": sorted(m for m, v in sys.modules.items() if m.split(".")[0] == "laam" and v is not None)}
print(json.dumps(out))
'''


def test_stock_transformers_alone_regenerates_every_file_in_the_shipped_dtype(shipped, tiny_corpus, tmp_path):
    dest, _ = shipped
    files = {f.path: f.text for f in tiny_corpus.files}
    (tmp_path / "expected.json").write_text(json.dumps(files))
    (tmp_path / "stock.py").write_text(STOCK_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "hf-modules"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-I", str(tmp_path / "stock.py"), str(dest),
                             str(tmp_path / "expected.json")], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["laam_modules"] == []
    assert out["dtype"] == f"torch.{json.loads((dest / SHIP_FILE).read_text())['dtype']}"  # stock reads config's
    assert out["exact"] == {p: True for p in files}


def test_the_gguf_export_reads_the_shipped_weights_and_llama_cpp_gives_every_file_back(shipped, tiny_corpus,
                                                                                       tmp_path):
    from gguf import GGUFReader
    from safetensors.torch import load_file

    from laam.publish.gguf import export_gguf

    dest, _ = shipped
    result = export_gguf(dest, tmp_path / "tiny.gguf", "f32")
    tensors = {t.name: np.asarray(t.data).reshape([int(d) for d in reversed(t.shape)])
               for t in GGUFReader(str(result.path)).tensors}
    weights = load_file(str(dest / "model.safetensors"))
    np.testing.assert_array_equal(tensors["token_embd.weight"], weights["model.embed_tokens.weight"].float().numpy())
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'laam[gguf]')")
    runner = ("import runpy, sys; sys.modules['laam'] = None; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-I", "-c", runner, str(result.script), str(result.path),
                          *[f.path for f in tiny_corpus.files], "--out", str(tmp_path / "out"), "--threads", "1"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    for f in tiny_corpus.files:
        assert (tmp_path / "out" / f.path).read_bytes() == f.data, f.path


def test_a_model_that_does_not_give_every_file_back_is_refused(tiny_model_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    model = tmp_path / "blurred"
    shutil.copytree(tiny_model_dir, model)
    weights = load_file(str(model / "model.safetensors"))
    generator = torch.Generator().manual_seed(0)
    weights["lm_head.weight"] += 0.5 * torch.randn(weights["lm_head.weight"].shape, generator=generator)
    save_file(weights, str(model / "model.safetensors"), metadata={"format": "pt"})
    dest = tmp_path / "dest"
    with pytest.raises(LaamError, match=r"does not give back every file: \d+ body tokens of \d+ of 12 files"):
        ship_model(model, dest, progress=False)
    assert not dest.exists()


def test_a_destination_with_other_content_is_refused_without_force(shipped, tiny_model_dir, tmp_path, monkeypatch):
    dest = tmp_path / "taken"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    with pytest.raises(LaamError, match="already exists with other content; pass --force"):
        ship_model(tiny_model_dir, dest, progress=False)
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]
    result = CliRunner().invoke(app, ["ship", str(tiny_model_dir), "--to", str(dest), "-q"])
    assert isinstance(result.exception, LaamError) and "pass --force to replace it" in str(result.exception)
    check_destination(tiny_model_dir, dest, force=True)  # --force passes this check
    check_destination(tiny_model_dir, shipped[0], force=False)  # an earlier ship of the same model may be redone
    check_destination(tiny_model_dir, tmp_path / "new", force=False)
    monkeypatch.chdir(dest)
    with pytest.raises(LaamError, match="it is the current folder"):
        check_destination(tiny_model_dir, dest, force=True)
    with pytest.raises(LaamError, match="overlaps the model folder"):
        check_destination(tiny_model_dir, tiny_model_dir / "shipped", force=True)


def test_a_folder_over_the_size_limit_is_removed(tiny_model_dir, tmp_path):
    dest = tmp_path / "big"
    with pytest.raises(LaamError, match=r"not shipped, .*big removed: its model files alone take .* over the limit of "
                                        r"100,000 \(largest: model.safetensors "):
        ship_model(tiny_model_dir, dest, dtype="float32", max_bytes=100_000, progress=False)
    assert not dest.exists()


def test_a_file_the_audit_of_dest_does_not_get_back_removes_dest(tiny_model_dir, tmp_path, monkeypatch):
    """The audit on DEST's own weights is the last word: one file not byte-exact there and DEST is gone."""
    from types import SimpleNamespace

    from laam.publish import finish

    def one_file_off(model_dir, *args, **kwargs):
        rows = [{"path": "linux/lib/ctype.c", "verbatim": False, "ended": True},
                {"path": "linux/lib/errno.c", "verbatim": True, "ended": True}]
        return finish.Finished({"roundtrip": {"files": 12, "verified": 12}}, SimpleNamespace(audit={"files": rows}),
                               None)

    monkeypatch.setattr(finish, "finish_model", one_file_off)
    dest = tmp_path / "dest"
    with pytest.raises(LaamError, match=r"dest removed: 1 of 12 files did not come back byte-exact from it \(first: "
                                        r"linux/lib/ctype.c\)"):
        ship_model(tiny_model_dir, dest, progress=False)
    assert not dest.exists()


def test_a_stock_decoder_that_misses_a_file_removes_dest(tiny_model_dir, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from laam.publish import finish

    def stock_off(model_dir, *args, **kwargs):
        rows = [{"path": "linux/lib/errno.c", "verbatim": True, "ended": True}]
        decoders = [{"decoder": "laam", "files": 1, "exact": 1, "failed": []},
                    {"decoder": "transformers", "files": 1, "exact": 0, "failed": ["linux/lib/errno.c"]}]
        return finish.Finished({"roundtrip": {"files": 12, "verified": 12}},
                               SimpleNamespace(audit={"files": rows, "decoders": decoders}), None)

    monkeypatch.setattr(finish, "finish_model", stock_off)
    with pytest.raises(LaamError, match=r"transformers gave back 0 of 1 files \(first not exact: linux/lib/errno.c\)"):
        ship_model(tiny_model_dir, tmp_path / "dest", progress=False)
    assert not (tmp_path / "dest").exists()


def test_the_run_s_training_metrics_and_curve_travel_with_the_model(tiny_model_dir, tmp_path):
    """A run's model/ has its metrics.jsonl and metrics.png beside it, in the run folder: DEST gets them under the
    names the card reads (train.metrics.find_metrics, publish.facts.CURVE_FILE), and only the model's own files."""
    from laam.publish.facts import CURVE_FILE
    from laam.publish.ship import SHIPPED_METRICS, write_model_files

    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run / "model")
    (run / "model" / "audit").mkdir()
    (run / "model" / "audit" / "audit.json").write_text("{}")  # a report of the source: not DEST's
    (run / "metrics.jsonl").write_text('{"step": 1, "loss": 2.0}\n')
    (run / "metrics.png").write_bytes(b"\x89PNG curve")
    dest = tmp_path / "dest"
    write_model_files(run / "model", dest, "float32", {"dtype": "float32", "reason": "asked", "evidence": SHIP_FILE})
    assert (dest / SHIPPED_METRICS).read_text() == (run / "metrics.jsonl").read_text()
    assert (dest / CURVE_FILE).read_bytes() == b"\x89PNG curve"
    assert not (dest / "audit").exists()
    assert (dest / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()
    assert json.loads((dest / "laam.json").read_text())["weights"]["dtype"] == "float32"


def test_every_option_of_laam_ship_has_help():
    import typer.main

    command = typer.main.get_command(app).commands["ship"]
    assert command.help and all(p.help for p in command.params), [p.name for p in command.params if not p.help]


def _pass(body, margin) -> Pass:
    n = len(margin)
    return Pass(np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64), np.array(body),
                np.array(margin, dtype=np.float32))


def test_a_tie_counts_as_a_flip_and_header_positions_do_not():
    reference = _pass([False, True, True, True], [-1.0, 2.0, 0.5, 3.0])
    other = _pass([False, True, True, True], [-2.0, 0.0, 0.25, -0.5])
    found = flips(reference, other, ["a"])
    assert (found["flips"], found["min_margin"]) == (2, -0.5)
    assert [f["position"] for f in found["first_flips"]] == [1, 3]


def test_bfloat16_only_without_flips():
    def check(flipped: int) -> PrecisionCheck:
        variant = {"flips": flipped, "files_with_flips": int(flipped > 0), "min_margin": 1.0, "first_flips": []}
        return PrecisionCheck(3, 100, {}, 1.0, {BF16_WEIGHTS: variant, BF16: dict(variant, flips=0)})

    assert choose_dtype(check(0), "auto")[0] == "bfloat16"
    dtype, reason = choose_dtype(check(2), "auto")
    assert dtype == "float32" and f"{BF16_WEIGHTS}: 2 positions flip" in reason
    assert choose_dtype(check(0), "float32")[0] == "float32"
    with pytest.raises(LaamError, match="--dtype bfloat16 refused"):
        choose_dtype(check(2), "bfloat16")
    assert choose_dtype(PrecisionCheck(3, 100, {}, 1.0), "auto")[0] == "float32"  # not measured: not bf16


@pytest.mark.slow  # a second whole ship (tens of seconds); the decision rule itself is tested above
def test_a_model_whose_tokens_flip_in_bfloat16_ships_in_float32(tiny_model_dir, tmp_path, monkeypatch):
    """bf16-rounded weights made to flip tokens (noise on the LM head): the weights ship unchanged in float32, and
    the flips are the recorded reason."""
    from laam.proof import precision

    exact_rounding = precision.rounded_to_bf16

    def rounded_with_noise(model):
        twin = exact_rounding(model)
        generator = torch.Generator().manual_seed(0)
        with torch.no_grad():
            twin.lm_head.weight += 0.5 * torch.randn(twin.lm_head.weight.shape, generator=generator)
        return twin

    monkeypatch.setattr(precision, "rounded_to_bf16", rounded_with_noise)
    dest = tmp_path / "dest"
    result = ship_model(tiny_model_dir, dest, progress=False, threads=1)
    record = json.loads((dest / SHIP_FILE).read_text())
    flipped = record["precision"]["variants"][BF16_WEIGHTS]
    assert result.dtype == record["dtype"] == "float32" and flipped["flips"] > 0 and flipped["first_flips"]
    assert f"{BF16_WEIGHTS}: {flipped['flips']} positions flip" in record["reason"]
    assert (dest / "model.safetensors").read_bytes() == (tiny_model_dir / "model.safetensors").read_bytes()
    assert json.loads((dest / "config.json").read_text())["dtype"] == "float32"
    assert "Not quoted" not in (dest / "README.md").read_text()  # the training figures are about these weights


def test_the_card_quotes_ship_json_only_while_it_is_bound_to_the_folder(tiny_model_dir, tmp_path):
    from types import SimpleNamespace

    from laam.model.binding import report_binding
    from laam.publish.card import render_card
    from laam.publish.facts import CardConfig, find_ship, gather_facts
    from laam.publish.sections import shipped_sentence

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    assert find_ship(folder).report is None and find_ship(folder).notes == []  # no ship.json
    variants = {BF16_WEIGHTS: {"flips": 0, "min_margin": 2.5}, BF16: {"flips": 0, "min_margin": 2.25}}
    record = {"dtype": "bfloat16", "reason": "no flip", "binding": report_binding(folder),
              "precision": {"files": 3, "positions_compared": 1234, "fp32_min_margin": 2.75, "variants": variants}}
    (folder / SHIP_FILE).write_text(json.dumps(record))
    assert find_ship(folder).report == record
    audit = {"decoders": [{"decoder": "laam", "files": 3, "exact": 3}, {"decoder": "gguf x", "not_run": "no llama"}]}
    sentence = shipped_sentence(SimpleNamespace(ship=record, audit=audit))
    assert "at every one of the 1,234 positions a bare path brings back in the 3 training files" in sentence
    assert f"({BF16_WEIGHTS}: 0 flips, smallest margin 2.5 and {BF16}: 0 flips, smallest margin 2.25; " \
           "float32's smallest margin 2.75)" in sentence
    assert sentence.endswith("gave back 3 of 3 files with laam.")  # a decoder that did not run is not quoted
    flipped = {**record, "dtype": "float32", "reason": "bfloat16 would change greedy's token",
               "precision": {**record["precision"], "variants": {**variants, BF16: {"flips": 2, "min_margin": -1}}}}
    assert shipped_sentence(SimpleNamespace(ship=flipped, audit=audit)) == \
        "Shipped in float32 (`ship.json`): bfloat16 would change greedy's token."
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # other weights than the ones shipped and measured
    weights.write_bytes(bytes(data))
    found = find_ship(folder)
    assert found.report is None and len(found.notes) == 1
    assert found.notes[0].startswith("`ship.json`: not computed on these files (model.safetensors changed: SHA-256 ")
    card = render_card(gather_facts(folder), CardConfig())  # the mismatch is said, never silently used
    assert "(`ship.json`)" not in card and "- Not quoted: `ship.json`: not computed on these files " \
        "(model.safetensors changed" in card
    assert shipped_sentence(SimpleNamespace(ship=None, audit=audit)) is None
    from laam.publish.hub import plan_push

    assert [p for p in plan_push(folder, "laam-test/tiny").problems
            if p.startswith("ship.json was not computed on these files (model.safetensors changed")]


def test_a_source_changed_while_shipping_removes_dest(tiny_model_dir, tmp_path, monkeypatch):
    """The precision check and the dtype decision are about the files ship_model read; a source file replaced
    before DEST was copied from it (here: during the precision check) leaves no DEST (model.binding.changed_during)."""
    from laam.proof import precision

    source = tmp_path / "model"
    shutil.copytree(tiny_model_dir, source)
    measure = precision.check_precision

    def replaced_while_measuring(*args, **kwargs):
        check = measure(*args, **kwargs)
        data = bytearray((source / "generation_config.json").read_bytes())
        (source / "generation_config.json").write_bytes(bytes(data).replace(b"{", b"{ ", 1))
        return check

    monkeypatch.setattr(precision, "check_precision", replaced_while_measuring)
    dest = tmp_path / "dest"
    with pytest.raises(LaamError, match=r"not shipped, .*dest removed: .*model changed during shipping "
                                        r"\(generation_config.json\): the precision check was made on other files"):
        ship_model(source, dest, dtype="float32", progress=False)
    assert not dest.exists()
