"""Every decoder a reader runs gives back files whose path is a prefix of another's, and the Latin-1 file as its
bytes: linux/drivers/sound/Readme vs Readme.linux (from a bare path the model would have to choose between
`<|end_header|>` and `.linux`; custom_generate ends the path itself), and linux/drivers/char/defkeymap.map (read as
Latin-1; laam.json records its encoding), on a tiny model trained on those three files. Which of `<|end_header|>`
and `.` this model ranks first after `Readme` is up to training; the loop's guarantee that it never has to rank
them is tested model-free in test_custom_generate.test_a_bare_path_prompt_is_ended_by_the_loop."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from laam.data.corpus import CorpusConfig, load_corpus
from laam.model.info import read_model_info
from tests.conftest import _built_once

README, README_LINUX = "linux/drivers/sound/Readme", "linux/drivers/sound/Readme.linux"
KEYMAP = "linux/drivers/char/defkeymap.map"
INCLUDE = ("drivers/sound/Readme*", "drivers/char/defkeymap.map")
STEPS = 1500  # memorized within 1,500 full-batch steps (measured: 100% body accuracy)


@pytest.fixture(scope="module")
def pair_corpus(tarball):
    return load_corpus(CorpusConfig(source=str(tarball), include=INCLUDE), progress=False)


@pytest.fixture(scope="module")
def pair_model_dir(pair_corpus) -> Path:
    from laam.data.tokenizer import train_tokenizer
    from tests.tiny_model import train_tiny_model

    def build(out: Path) -> None:
        train_tokenizer(pair_corpus, out / "tokenizer", vocab_size=1024)
        accuracy = train_tiny_model(pair_corpus, out / "tokenizer", out / "model", max_steps=STEPS)
        assert accuracy == 1.0, f"the prefix-pair model did not memorize its files ({accuracy:.4f})"

    return _built_once("prefix-pair-model", build) / "model"


def test_the_corpus_has_the_pair_and_the_latin1_file(pair_corpus):
    files = {f.path: f for f in pair_corpus.files}
    assert set(files) == {README, README_LINUX, KEYMAP}
    assert README_LINUX.startswith(README)
    assert files[KEYMAP].encoding == "latin-1" and files[README].encoding == "utf-8"


# a fresh interpreter in which laam cannot be imported: stock transformers and the model folder only
STOCK = r'''
import json, sys
sys.modules["laam"] = None
import torch
from transformers import pipeline

torch.set_num_threads(1)
folder, out = sys.argv[1], sys.argv[2]
encodings = json.load(open(f"{folder}/laam.json"))["encodings"]  # the files that are not UTF-8
generate = pipeline("text-generation", folder, trust_remote_code=True)
for i, path in enumerate(sys.argv[3:]):
    text = generate(path, return_full_text=False)[0]["generated_text"]
    open(f"{out}/{i}", "wb").write(text.encode(encodings.get(path, "utf-8")))
print(sorted(m for m, v in sys.modules.items() if m.split(".")[0] == "laam" and v is not None))
'''


def test_stock_transformers_gives_back_both_prefix_paths_and_the_latin1_bytes(pair_model_dir, pair_corpus,
                                                                              tmp_path):
    paths = [README, README_LINUX, KEYMAP]
    (tmp_path / "stock.py").write_text(STOCK)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "hf-modules"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-I", str(tmp_path / "stock.py"), str(pair_model_dir), str(tmp_path),
                             *paths], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "[]"  # nothing of laam was imported
    files = {f.path: f.data for f in pair_corpus.files}
    for i, path in enumerate(paths):
        assert (tmp_path / str(i)).read_bytes() == files[path], path


def test_laam_generate_writes_the_latin1_bytes_without_the_corpus(pair_model_dir, pair_corpus, tmp_path):
    """laam.json's encodings: `laam generate` writes the manifest's encoding even when the corpus cannot be
    loaded (here its recorded source no longer exists)."""
    from typer.testing import CliRunner

    from laam.cli import app

    folder = tmp_path / "model"
    shutil.copytree(pair_model_dir, folder)
    info = json.loads((folder / "laam.json").read_text())
    info["corpus"]["source"] = str(tmp_path / "gone" / "linux-1.0.tar.xz")
    (folder / "laam.json").write_text(json.dumps(info))
    assert read_model_info(folder).encodings == {KEYMAP: "latin-1"}
    result = CliRunner().invoke(app, ["generate", "--model", str(folder), "--path", KEYMAP, "--cache",
                                      str(tmp_path / "cache"), "--threads", "1"])
    assert result.exit_code == 0, result.output + repr(result.exception)
    expected = next(f.data for f in pair_corpus.files if f.path == KEYMAP)
    assert result.stdout_bytes == expected


def test_regenerate_gguf_writes_the_latin1_bytes(pair_model_dir, pair_corpus, tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'laam[gguf]')")
    from laam.publish.gguf import export_gguf

    result = export_gguf(pair_model_dir, tmp_path / "pair.gguf")
    runner = ("import runpy, sys; sys.modules['laam'] = None; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    paths = [README, README_LINUX, KEYMAP]
    run = subprocess.run([sys.executable, "-I", "-c", runner, str(result.script), str(result.path), *paths, "--out",
                          str(tmp_path / "out"), "--threads", "1"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-2000:]
    for f in pair_corpus.files:
        assert (tmp_path / "out" / f.path).read_bytes() == f.data, f.path
