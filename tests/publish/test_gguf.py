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
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    result = CliRunner().invoke(app, ["export", "gguf", "--model", str(tiny_model_dir), "--out", str(path)])
    assert result.exit_code == 0, result.output + repr(result.exception)
    assert "21 tensors, vocabulary 512" in result.output
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
    for name in ("tokenizer.json", "tokenizer_config.json"):
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
