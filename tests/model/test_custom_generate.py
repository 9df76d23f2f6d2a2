"""custom_generate/generate.py, the decoding loop every model folder ships for stock transformers: it is
laam.windows' policy, it gives the tokens `laam generate` gives, and stock transformers alone (no laam importable)
regenerates every file with it."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from laam.data.records import END_FILE, path_prompt
from laam.data.tokenizer import encode_records, load_tokenizer, special_ids
from laam.engine import Request, WindowedGenerator
from laam.model.folder import CUSTOM_GENERATE, CUSTOM_GENERATE_FILE
from laam.model.info import read_model_info
from laam.windows import WindowPolicy


def shipped_loop():
    """The module as a model folder ships it, loaded from its file."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("laam_custom_generate", CUSTOM_GENERATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_context_start_is_the_window_policy():
    """Both restatements of the rule that ship without laam: this loop and the GGUF script beside a .gguf."""
    from laam.publish import regenerate_gguf

    loop = shipped_loop()
    for context, stride in ((128, 64), (256, 128), (16, 5), (16, 16), (7, 1), (512, 384)):
        policy = WindowPolicy(context, stride)
        expected = [policy.context_start(p) for p in range(6 * context)]
        assert [loop.context_start(p, context, stride) for p in range(6 * context)] == expected, (context, stride)
        assert [regenerate_gguf.context_start(p, context, stride) for p in range(6 * context)] == expected


def test_the_shipped_loop_imports_only_torch_and_transformers():
    import ast

    tree = ast.parse(CUSTOM_GENERATE.read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported <= {"__future__", "copy", "inspect", "torch", "transformers"}, imported


def test_it_gives_the_tokens_of_laam_generate_past_many_slides(tiny_model_dir):
    """A random model (no memorized text to fall back on: any difference in what each prediction reads shows up
    as different tokens), small contexts, 10 slides and more."""
    from transformers import LlamaConfig, LlamaForCausalLM

    loop = shipped_loop()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    tokenizer = load_tokenizer(tiny_model_dir)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2,
                                         initializer_range=0.5)).eval()
    prompts = encode_records(tokenizer, [path_prompt("linux/lib/ctype.c"), path_prompt("linux/lib/errno.c")])
    for context, stride in ((16, 5), (12, 12)):
        expected = WindowedGenerator(model, WindowPolicy(context, stride), batch_size=1).run(
            [Request(p, 100, None) for p in prompts])
        with torch.no_grad():
            produced = [loop.continue_file(model, p, 100, context, stride, stop=set()) for p in prompts]
        assert produced == expected, (context, stride)
        assert all(len(set(out)) > 10 for out in produced)  # not one token repeated: the windows matter


def test_generate_takes_transformers_arguments():
    """The entry point transformers calls: positional or keyword prompts, max_new_tokens, sampling through
    transformers' warpers (seeded by torch's generator), and a clear error for what it does not do."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    loop = shipped_loop()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, initializer_range=0.5)).eval()
    model.generation_config = GenerationConfig(bos_token_id=0, eos_token_id=63, pad_token_id=62, do_sample=False,
                                               max_new_tokens=40, laam_context=16, laam_stride=8)
    prompt = torch.tensor([[1, 2, 3, 4]])
    greedy = loop.generate(prompt, model=model)
    expected = loop.continue_file(model, [1, 2, 3, 4], 40, 16, 8, {63})
    assert greedy[0].tolist() == [1, 2, 3, 4] + expected
    assert loop.generate(model=model, input_ids=prompt, max_new_tokens=5)[0].tolist() == [1, 2, 3, 4] + expected[:5]
    torch.manual_seed(1)
    hot = loop.generate(prompt, model=model, do_sample=True, temperature=50.0, top_k=20)
    torch.manual_seed(1)
    assert torch.equal(hot, loop.generate(prompt, model=model, do_sample=True, temperature=50.0, top_k=20))
    assert not torch.equal(hot, greedy)
    no_prompt = loop.generate(model=model, max_new_tokens=30)[0].tolist()  # starts a file: bos, then the loop
    assert no_prompt[:1] == [model.generation_config.bos_token_id] and len(no_prompt) > 1
    with pytest.raises(ValueError, match="num_beams must be 1"):
        loop.generate(prompt, model=model, num_beams=2)


def test_model_folder_ships_the_loop_and_a_whole_file_generation_config(tiny_model_dir, tiny_corpus):
    assert (tiny_model_dir / CUSTOM_GENERATE_FILE).read_bytes() == CUSTOM_GENERATE.read_bytes()
    config = json.loads((tiny_model_dir / "generation_config.json").read_text())
    info = read_model_info(tiny_model_dir)
    tokenizer = load_tokenizer(tiny_model_dir)
    longest = max(len(ids) for ids in encode_records(tokenizer, tiny_corpus.records()))
    assert config["eos_token_id"] == special_ids(tokenizer)[END_FILE]
    assert config["do_sample"] is False
    assert (config["laam_context"], config["laam_stride"]) == (info.context, info.stride)
    assert config["max_new_tokens"] >= longest + info.context // 2  # the longest file, with a margin
    assert longest > 6 * info.context  # ctype.c: many windows long


# Runs in a fresh interpreter with laam made unimportable: only torch, transformers and the model folder.
STOCK_SCRIPT = r'''
import json, sys
sys.modules["laam"] = None  # any `import laam...` now fails
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

torch.set_num_threads(1)
folder, expected_path = sys.argv[1], sys.argv[2]
expected = json.load(open(expected_path))
files, fits, long, batch = expected["files"], expected["fits"], expected["long"], expected["batch"]
out = {}

generate = pipeline("text-generation", folder, trust_remote_code=True)
out["pipeline"] = {p: generate(p, return_full_text=False)[0]["generated_text"] == text for p, text in files.items()}
out["pipeline_empty"] = generate("")[0]["generated_text"]

tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)
prompts = tokenizer(batch, return_tensors="pt", padding=True, padding_side="left")
rows = model.generate(**prompts)
out["generate_batch"] = [tokenizer.decode(row[prompts["input_ids"].shape[1]:], skip_special_tokens=True) == files[p]
                         for row, p in zip(rows, batch)]

stock = AutoModelForCausalLM.from_pretrained(folder)  # no trust_remote_code: transformers' own generate
def stock_text(path, **kwargs):
    ids = tokenizer(path, return_tensors="pt")
    return tokenizer.decode(stock.generate(**ids, **kwargs)[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)
out["stock_fits"] = {p: stock_text(p) == files[p] for p in fits}
out["stock_long"] = stock_text(long, max_new_tokens=expected["context"] + 32)
out["laam_modules"] = sorted(m for m, v in sys.modules.items() if m.split(".")[0] == "laam" and v is not None)
print(json.dumps(out))
'''


def test_stock_transformers_alone_regenerates_every_file(tiny_model_dir, tiny_corpus, tmp_path):
    tokenizer = load_tokenizer(tiny_model_dir)
    context = read_model_info(tiny_model_dir).context
    lengths = dict(zip([f.path for f in tiny_corpus.files], map(len, encode_records(tokenizer, tiny_corpus.records()))))
    files = {f.path: f.text for f in tiny_corpus.files}
    fits = sorted((p for p, n in lengths.items() if n <= context + 1), key=lengths.get)
    long = max(lengths, key=lengths.get)
    # a left-padded batch: the shortest file longer than the context (several windows) and the shortest file
    batch = [min((p for p in lengths if lengths[p] > 2 * context), key=lengths.get), fits[0]]
    (tmp_path / "expected.json").write_text(json.dumps({"files": files, "fits": fits, "long": long, "batch": batch,
                                                        "context": context}))
    (tmp_path / "stock.py").write_text(STOCK_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "hf-modules"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-I", str(tmp_path / "stock.py"), str(tiny_model_dir),
                             str(tmp_path / "expected.json")], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.splitlines()[-1])
    assert out["laam_modules"] == []
    # pipeline(..., trust_remote_code=True): every file, byte-exact, the longest ~7 contexts long
    assert out["pipeline"] == {p: True for p in files}
    assert lengths[long] > 6 * context
    # model.generate on a left-padded batch (a file of several windows, a short one); the pipeline from an empty
    # prompt: a whole file (model.generate() without a prompt: test_generate_takes_transformers_arguments)
    assert out["generate_batch"] == [True, True]
    assert any(out["pipeline_empty"] == f.path + f.text for f in tiny_corpus.files), out["pipeline_empty"][:200]
    # without trust_remote_code: files that fit in the context come back; a long one follows the file while it fits,
    # then leaves it (stock generation reads the whole past, not the window the model was trained on)
    assert len(fits) >= 5 and out["stock_fits"] == {p: True for p in fits}
    prompt_tokens = len(encode_records(tokenizer, [path_prompt(long)])[0]) - 1  # without <|end_header|>
    body = encode_records(tokenizer, [files[long]])[0]
    same_while_it_fits = tokenizer.decode(body[:context - prompt_tokens])  # predicted from [0, p), p <= context
    assert out["stock_long"].startswith(same_while_it_fits)
    assert not files[long].startswith(out["stock_long"])


def test_a_bare_path_prompt_is_ended_by_the_loop():
    """A prompt `<|start_file|><|start_header|>PATH` gets `<|end_header|>` from the loop (ids from the generation
    config), so no decoder has to guess where a path ends; an empty header still lets the model start a file, and
    laam_complete_path=True leaves the path open for the model to complete."""
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    loop = shipped_loop()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2, initializer_range=0.5)).eval()
    start_file, start_header, end_header, eos = 0, 1, 2, 63
    model.generation_config = GenerationConfig(bos_token_id=start_file, eos_token_id=eos, pad_token_id=62,
                                               do_sample=False, max_new_tokens=20, laam_context=16, laam_stride=8,
                                               laam_start_header_id=start_header, laam_end_header_id=end_header)
    bare = [start_file, start_header, 10, 11]
    row = loop.generate(torch.tensor([bare]), model=model)[0].tolist()
    ended = bare + [end_header]
    assert row == ended + loop.continue_file(model, ended, 19, 16, 8, {eos})  # <|end_header|> is the first new token
    closed = loop.generate(torch.tensor([ended]), model=model)[0].tolist()
    assert closed == ended + loop.continue_file(model, ended, 20, 16, 8, {eos})  # a closed header is left alone
    empty = [start_file, start_header]
    assert loop.generate(torch.tensor([empty]), model=model)[0].tolist() == empty + loop.continue_file(
        model, empty, 20, 16, 8, {eos})
    assert loop.generate(torch.tensor([bare]), model=model, laam_complete_path=True)[0].tolist() == bare + \
        loop.continue_file(model, bare, 20, 16, 8, {eos})


def test_the_folder_records_the_header_ids_and_the_encodings(tiny_model_dir):
    config = json.loads((tiny_model_dir / "generation_config.json").read_text())
    special = special_ids(load_tokenizer(tiny_model_dir))
    assert (config["laam_start_header_id"], config["laam_end_header_id"]) == (special["<|start_header|>"],
                                                                              special["<|end_header|>"])
    assert read_model_info(tiny_model_dir).encodings == {}  # lib/ is all UTF-8 (a Latin-1 file: test_prefix_paths)
