"""The equivalence matrix on the tiny model (context 128; ctype.c is 7 contexts long): every decoder that follows
LaaM's sliding window gives back every file byte for byte, with the very tokens of `laam generate`."""

from __future__ import annotations

import pytest

from laam.data.tokenizer import encode_records, load_tokenizer
from laam.model.info import read_model_info
from laam.proof.equivalence import DECODERS, SLIDING, GgufTools, equivalence, matrix_markdown
from laam.publish import regenerate_gguf
from laam.publish.gguf import export_gguf

GGUF = GgufTools(export_gguf, regenerate_gguf)


def test_sliding_decoders_give_every_file_with_the_tokens_of_laam_generate(tiny_model_dir, tiny_corpus, tmp_path):
    """Stock generate with the folder's custom_generate, and regenerate_gguf.py on the f16 and q8_0 exports: every
    file, and token for token the original's tokens, which are what `laam generate` (the engine at batch 1) gives
    on this model (tests/engine/test_generator.py; the slow test below runs `laam generate` itself)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'laam[gguf]')")
    files = tiny_corpus.files
    tokenizer = load_tokenizer(tiny_model_dir)
    originals = dict(zip([f.path for f in files], encode_records(tokenizer, [f.text for f in files])))
    rows = equivalence(tiny_model_dir, files, ("generate", "gguf f16", "gguf q8_0"), tmp_path, threads=1,
                       gguf=GGUF)
    for row in rows:
        assert row.exact(files) == [f.path for f in files], row.decoder
        assert row.tokens == originals, row.decoder
    context = read_model_info(tiny_model_dir).context
    lengths = [len(ids) for ids in encode_records(tokenizer, tiny_corpus.records())]
    assert max(lengths) > 6 * context and sum(n > context + 1 for n in lengths) >= 4
    # each row's smallest body-token margin under its own arithmetic: fp32 is the audit's certificate; llama.cpp in
    # f16 and q8_0 moves it a little (by < 0.5 logits on the models benchmarks/equivalence.py measured), never
    # across zero here
    from laam.model.folder import load_model
    from laam.proof.margin import minimum_margin

    loaded = load_model(tiny_model_dir)
    certificate = minimum_margin(loaded.model, loaded.tokenizer, [f.record for f in files], loaded.policy)
    assert rows[0].min_margin == pytest.approx(certificate, abs=1e-4) and certificate > 0
    for row in rows[1:]:
        assert 0 < row.min_margin and abs(row.min_margin - certificate) < 1.0, row.decoder
    table = matrix_markdown(rows, files)
    assert f"| generate | 12/12 | — | {certificate:.3f} |" in table


@pytest.mark.slow
def test_the_whole_matrix_on_the_tiny_model(tiny_model_dir, tiny_corpus, tmp_path):
    """Every decoder: the sliding ones give all 12 files; stock generation, llama.cpp's context shift and plain
    llama-cpp-python are the same computation only while a file fits in the context."""
    pytest.importorskip("llama_cpp")
    files = tiny_corpus.files
    rows = {row.decoder: row for row in equivalence(tiny_model_dir, files, tuple(DECODERS), tmp_path, threads=1,
                                                    gguf=GGUF)}
    for name in SLIDING:
        assert rows[name].exact(files) == [f.path for f in files], name
        if rows[name].tokens:
            assert rows[name].tokens == rows["laam generate"].tokens, name
    context = read_model_info(tiny_model_dir).context
    lengths = dict(zip([f.path for f in files],
                       map(len, encode_records(load_tokenizer(tiny_model_dir), tiny_corpus.records()))))
    fits = [f.path for f in files if lengths[f.path] <= context + 1]
    for name in ("stock generate", "gguf f16 context shift", "gguf f16 plain"):
        assert rows[name].min_margin is None  # not the window the margins are measured under
        exact = rows[name].exact(files)
        assert set(fits) <= set(exact), name
        assert "linux/lib/ctype.c" not in exact, name  # 7 contexts long: not the computation it was trained on


def test_gguf_decoders_need_the_gguf_tools(tmp_path):
    """The GGUF rows run publish's exporter and script, which proof does not import: asked for without them, the
    matrix says so before loading anything."""
    with pytest.raises(ValueError, match="GGUF decoders need gguf=GgufTools"):
        equivalence(tmp_path, [], ("generate", "gguf f16"))
