"""GGUF export: the file's contents, and llama.cpp's greedy output against transformers' on the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from laam.cli import app
from laam.publish.gguf import permute_rotary

NEW_TOKENS = 48  # prompt (~10 tokens) + 48 stays inside the tiny model's 128-token context


@pytest.fixture(scope="module")
def gguf_file(tiny_model_dir, tmp_path_factory):
    # a folder name longer than a terminal line: the report must keep the path and its figures on one line
    path = tmp_path_factory.mktemp("gguf") / ("a-long-folder-name-" * 5) / "tiny.gguf"
    result = CliRunner().invoke(app, ["export", "gguf", "--model", str(tiny_model_dir), "--out", str(path)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert f"wrote {path}: 21 tensors, vocabulary 512" in result.output
    return path


def test_rotary_permutation_interleaves_the_halves():
    # HF keeps a head's rotary pairs as (i, i + d/2); llama.cpp wants them adjacent: rows 0,2,1,3 for d = 4
    rows = np.arange(8).reshape(8, 1)  # two heads of size 4
    assert permute_rotary(rows, n_head=2).ravel().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_gguf_holds_the_llama_and_its_tokenizer(gguf_file, tiny_model_dir):
    from gguf import GGUFReader, TokenType
    from safetensors.numpy import load_file

    reader = GGUFReader(str(gguf_file))

    def field(name):
        return reader.fields[name].contents()

    config = json.loads((tiny_model_dir / "config.json").read_text())
    tokenizer = json.loads((tiny_model_dir / "tokenizer.json").read_text())
    assert field("general.architecture") == "llama"
    assert field("llama.block_count") == config["num_hidden_layers"]
    assert field("llama.context_length") == config["max_position_embeddings"]
    assert field("tokenizer.ggml.model") == "gpt2" and field("tokenizer.ggml.pre") == "gpt-2"
    assert field("tokenizer.ggml.add_bos_token") is False
    assert field("tokenizer.ggml.bos_token_id") == config["bos_token_id"]
    tokens, types = field("tokenizer.ggml.tokens"), field("tokenizer.ggml.token_type")
    expected = {i: t for t, i in tokenizer["model"]["vocab"].items()}
    expected.update({a["id"]: a["content"] for a in tokenizer["added_tokens"]})
    assert tokens == [expected[i] for i in range(config["vocab_size"])]
    specials = {a["id"] for a in tokenizer["added_tokens"] if a["special"]}
    assert [i for i, t in enumerate(types) if t == TokenType.CONTROL] == sorted(specials)
    assert field("tokenizer.ggml.merges") == [" ".join(m) for m in tokenizer["model"]["merges"]]

    hf = load_file(str(tiny_model_dir / "model.safetensors"))
    tensors = {t.name: np.asarray(t.data).reshape([int(d) for d in reversed(t.shape)]) for t in reader.tensors}
    assert len(tensors) == len(hf)
    np.testing.assert_array_equal(tensors["token_embd.weight"], hf["model.embed_tokens.weight"])
    np.testing.assert_array_equal(tensors["output.weight"], hf["lm_head.weight"])
    np.testing.assert_array_equal(tensors["blk.1.ffn_down.weight"], hf["model.layers.1.mlp.down_proj.weight"])
    np.testing.assert_array_equal(tensors["blk.0.attn_q.weight"], permute_rotary(
        hf["model.layers.0.self_attn.q_proj.weight"], config["num_attention_heads"]))
    np.testing.assert_array_equal(tensors["blk.0.attn_v.weight"], hf["model.layers.0.self_attn.v_proj.weight"])


def test_llama_cpp_greedy_equals_transformers(gguf_file, tiny_model_dir, tiny_corpus):
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'laam[gguf]')")
    import torch
    from transformers import AutoModelForCausalLM

    from laam.data.records import path_prompt
    from laam.data.tokenizer import encode_records, load_tokenizer, special_ids

    torch.set_num_threads(1)
    tokenizer = load_tokenizer(tiny_model_dir)
    end_file = special_ids(tokenizer)["<|end_file|>"]
    llm = llama_cpp.Llama(model_path=str(gguf_file), n_ctx=128, n_threads=1, n_batch=128, verbose=False)

    records = list(tiny_corpus.records())
    for record, ids in zip(records, encode_records(tokenizer, records)):
        assert llm.tokenize(record.encode("utf-8"), add_bos=False, special=True) == ids

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    files = sorted(tiny_corpus.files, key=lambda f: len(f.data))
    for f in (files[0], files[len(files) // 2], files[-1]):
        prompt = encode_records(tokenizer, [path_prompt(f.path)])[0]
        with torch.no_grad():
            output = model.generate(torch.tensor([prompt]), max_new_tokens=NEW_TOKENS, do_sample=False,
                                    eos_token_id=end_file, pad_token_id=end_file)
        expected = output[0, len(prompt):].tolist()
        llm.reset()
        produced = []
        for token in llm.generate(prompt, top_k=1, temp=0.0, reset=True):
            produced.append(token)
            if token == end_file or len(produced) == NEW_TOKENS:
                break
        assert produced == expected, f.path
        assert len(expected) > 10


def test_llama_cpp_logits_match_with_grouped_kv_heads_and_tied_embeddings(tiny_model_dir, tiny_corpus, tmp_path):
    """Shapes the training engine can make and the tiny model does not have: fewer key/value heads than heads
    (k is permuted per kv head) and tied embeddings (no output tensor). Random weights: compare logits."""
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'laam[gguf]')")
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from laam.data.tokenizer import encode_records, load_tokenizer
    from laam.publish.gguf import export_gguf

    torch.manual_seed(0)
    torch.set_num_threads(1)
    base = json.loads((tiny_model_dir / "config.json").read_text())
    config = LlamaConfig(vocab_size=base["vocab_size"], hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         tie_word_embeddings=True, initializer_range=0.3, bos_token_id=0, eos_token_id=3,
                         pad_token_id=4)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json", "laam.json"):
        shutil.copy(tiny_model_dir / name, tmp_path / name)
    result = export_gguf(tmp_path, tmp_path / "gqa.gguf")
    assert result.tensors == 2 + 9 * 2  # no output.weight: llama.cpp reuses token_embd

    ids = encode_records(load_tokenizer(tmp_path), [max(tiny_corpus.records(), key=len)])[0][:100]
    assert len(ids) == 100
    with torch.no_grad():
        expected = model(torch.tensor([ids])).logits[0].numpy()
    llm = llama_cpp.Llama(model_path=str(result.path), n_ctx=128, n_threads=1, logits_all=True, verbose=False,
                          type_k=llama_cpp.GGML_TYPE_F32, type_v=llama_cpp.GGML_TYPE_F32)  # exact KV cache
    llm.eval(ids)
    produced = np.asarray(llm.scores[:len(ids)])
    assert expected.std() > 0.5  # logits far from uniform, so the comparison means something
    np.testing.assert_allclose(produced, expected, atol=1e-3)  # ~3e-5 seen; a wrong k layout is off by ~10
    assert (produced.argmax(-1) == expected.argmax(-1)).all()


def test_q8_0_export_quantizes_the_matrices_and_records_the_window(tiny_model_dir, tmp_path):
    from gguf import GGMLQuantizationType, GGUFReader

    from laam.model.info import read_model_info
    from laam.publish.gguf import REGENERATE_SCRIPT, export_gguf

    result = export_gguf(tiny_model_dir, tmp_path / "tiny-q8_0.gguf", "q8_0")
    reader = GGUFReader(str(result.path))
    types = {t.name: t.tensor_type for t in reader.tensors}
    matrices = [t.name for t in reader.tensors if len(t.shape) == 2]
    assert len(matrices) == 2 + 7 * 2 and all(types[name] == GGMLQuantizationType.Q8_0 for name in matrices)
    assert {types[t.name] for t in reader.tensors if len(t.shape) == 1} == {GGMLQuantizationType.F32}  # norms
    info = read_model_info(tiny_model_dir)
    assert reader.fields["laam.context"].contents() == info.context
    assert reader.fields["laam.stride"].contents() == info.stride
    assert result.script == tmp_path / "regenerate_gguf.py"
    assert result.script.read_bytes() == REGENERATE_SCRIPT.read_bytes()
    assert result.bytes < 0.6 * export_gguf(tiny_model_dir, tmp_path / "tiny-f16.gguf", "f16").bytes


def test_regenerate_gguf_script_alone_gives_back_every_file(gguf_file, tiny_corpus, tmp_path):
    """The script `laam export gguf` writes beside the .gguf, run by a Python that cannot import laam: every file
    of the tiny corpus, byte for byte, ctype.c included (7 times the 128-token context)."""
    import ast
    import os
    import subprocess
    import sys

    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'laam[gguf]')")
    script = gguf_file.parent / "regenerate_gguf.py"
    imported = {alias.name.split(".")[0] for node in ast.walk(ast.parse(script.read_text()))
                if isinstance(node, (ast.Import, ast.ImportFrom))
                for alias in ([ast.alias(node.module)] if isinstance(node, ast.ImportFrom) else node.names)}
    assert imported <= {"__future__", "argparse", "json", "sys", "pathlib", "llama_cpp"}, imported
    paths = [f.path for f in tiny_corpus.files]
    runner = ("import runpy, sys; sys.modules['laam'] = None; sys.argv = sys.argv[1:]; "
              "runpy.run_path(sys.argv[0], run_name='__main__')")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-I", "-c", runner, str(script), str(gguf_file), *paths, "--out",
                             str(tmp_path / "out"), "--threads", "1"], cwd=tmp_path, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    for f in tiny_corpus.files:
        assert (tmp_path / "out" / f.path).read_bytes() == f.data, f.path
    one = subprocess.run([sys.executable, "-I", "-c", runner, str(script), str(gguf_file), "linux/lib/errno.c"],
                         cwd=tmp_path, env=env, capture_output=True, timeout=600)
    assert one.stdout == next(f.data for f in tiny_corpus.files if f.path == "linux/lib/errno.c")


def test_q8_0_export_is_what_llama_cpps_own_quantizer_writes(gguf_file, tiny_model_dir, tmp_path):
    """Quantizing the f32 export with llama.cpp (llama_model_quantize, Q8_0) gives the same tensors, byte for byte,
    as `laam export gguf --dtype q8_0` (the gguf package's numpy Q8_0)."""
    llama_cpp = pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'laam[gguf]')")
    from gguf import GGUFReader

    from laam.publish.gguf import export_gguf

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.nthread = llama_cpp.LLAMA_FTYPE_MOSTLY_Q8_0, 1
    theirs = tmp_path / "llama-cpp-q8_0.gguf"
    assert llama_cpp.llama_model_quantize(str(gguf_file).encode(), str(theirs).encode(), params) == 0
    ours = export_gguf(tiny_model_dir, tmp_path / "laam-q8_0.gguf", "q8_0").path
    a, b = ({t.name: t for t in GGUFReader(str(path)).tensors} for path in (ours, theirs))
    assert set(a) == set(b) and len(a) == 21
    for name in a:
        assert a[name].tensor_type == b[name].tensor_type, name
        np.testing.assert_array_equal(np.asarray(a[name].data), np.asarray(b[name].data), err_msg=name)


def test_an_interrupted_export_leaves_no_half_written_file(tiny_model_dir, tmp_path, monkeypatch):
    import laam.publish.gguf as gguf_module

    def cut_short(path, *args):
        with open(path, "wb") as handle:
            handle.write(b"GGUF")  # the header's first bytes, then the export dies
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_module, "_write_gguf", cut_short)
    with pytest.raises(KeyboardInterrupt):
        gguf_module.export_gguf(tiny_model_dir, tmp_path / "tiny.gguf")
    assert list(tmp_path.iterdir()) == []
