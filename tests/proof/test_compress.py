"""The model as a compressor: byte-exact round trips under sliding windows, real compression, clear errors."""

from __future__ import annotations

import json
import lzma
import subprocess
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from laam.errors import LaamError
from laam.model.folder import load_model
from laam.proof.compress.coder import compress_files, decompress_container, plan_batches
from laam.proof.compress.container import MAGIC, read_container, write_container
from laam.proof.compress.run import CompressConfig, compress_corpus
from laam.windows import WindowPolicy


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def loaded(tiny_model_dir):
    return load_model(tiny_model_dir, "cpu")


@pytest.fixture(scope="module")
def compressed(tiny_model_dir, tmp_path_factory):
    """The whole tiny corpus through `compress_corpus` (the library call behind `laam compress`)."""
    out = tmp_path_factory.mktemp("compressed") / "tiny.laamz"
    report = compress_corpus(tiny_model_dir, out, config=CompressConfig(batch_size=5, device="cpu"),
                             archive_baselines=False)
    return out, report


def test_round_trip_whole_tiny_corpus_byte_exact(compressed, loaded, tiny_corpus):
    out, report = compressed
    container = read_container(out)
    decoded = {d.path: d for d in decompress_container(loaded, container, verify=True)}
    assert sorted(decoded) == sorted(f.path for f in tiny_corpus.files)
    for f in tiny_corpus.files:
        assert decoded[f.path].ok, decoded[f.path].problem
        assert decoded[f.path].data == f.data
    assert report["roundtrip"] == {"files": len(tiny_corpus.files), "verified": len(tiny_corpus.files)}
    # several batches of unequal lengths, and files longer than the context, so windows slid
    assert len(container.batches) == 3
    assert max(f.tokens for f in container.files) > 2 * loaded.policy.context


def test_memorized_model_beats_gzip_on_the_same_bytes(compressed, tiny_corpus):
    _, report = compressed
    rates, same = report["bits_per_byte"], report["baselines"]["same_bytes"]
    assert same["bytes"] == sum(len(f.data) for f in tiny_corpus.files) == report["corpus"]["bytes"]
    best = min(same[name]["bits_per_byte"] for name in ("gzip -9", "xz -9e", "zstd -19"))
    assert rates["ideal"] < 0.05  # memorized: next to nothing per byte
    assert rates["stream"] < 0.05 * best  # the coded streams themselves
    # the file list (paths, sizes, token counts) costs more than the streams on 4 KB, and still beats gzip/xz
    assert rates["ideal"] <= rates["stream"] + 0.01 < rates["decodable"] < rates["raw"] < best
    assert rates["adjusted"] == pytest.approx(rates["raw"] + 8 * report["model"]["weights_bytes"] / same["bytes"])
    assert report["throughput"]["compress_bytes_per_s"] > 0 and report["throughput"]["decompress_bytes_per_s"] > 0
    written = json.loads(Path(report["report_path"]).read_text())
    assert written["bits_per_byte"] == rates and written["format"] == "laam-compression/1"


def test_batching_does_not_change_the_decoded_bytes(loaded, tiny_corpus):
    """One file per batch and all files in one batch decode the same (each side runs the same shapes)."""
    files = [f for f in tiny_corpus.files if f.path.endswith(("ctype.c", "errno.c", "close.c"))]
    for batch_size in (1, 3):
        container, stats = compress_files(loaded, files, batch_size=batch_size)
        assert len(container.batches) == -(-len(files) // batch_size)
        assert stats.coded_tokens == sum(f.tokens - f.header_tokens for f in container.files)
        decoded = {d.path: d.data for d in decompress_container(loaded, container)}
        assert decoded == {f.path: f.data for f in files}


@pytest.fixture(scope="module", params=[4, 32], ids=["sdpa-heads", "small-heads"])
def untrained_model_dir(request, tiny_corpus, tiny_tokenizer_dir, tmp_path_factory) -> Path:
    """The tiny model's shape, untrained: near-uniform probabilities over all 512 tokens, so every token costs
    ≈9 bits and the streams are long: a hard test of encoder/decoder agreement. With 4 heads of 16 the model
    runs SDPA; with 32 heads of 2 (the original 5M model's head size) the engine's small-head attention."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from laam.data.tokenizer import load_tokenizer, special_ids
    from laam.model.info import write_model_info

    folder = tmp_path_factory.mktemp("untrained")
    tokenizer = load_tokenizer(tiny_tokenizer_dir)
    ids = special_ids(tokenizer)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=request.param, num_key_value_heads=4, max_position_embeddings=128,
                         bos_token_id=ids["<|start_file|>"], eos_token_id=ids["<|end_file|>"],
                         pad_token_id=ids["<|pad|>"])
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_model_info(folder, tiny_corpus, WindowPolicy(128, 64))
    return folder


def test_round_trip_under_an_untrained_model(untrained_model_dir, tiny_corpus):
    from laam.model.attention import SMALL_HEADS

    loaded = load_model(untrained_model_dir, "cpu")
    small = loaded.model.config.num_attention_heads == 32
    assert (loaded.model.config._attn_implementation == SMALL_HEADS) == small
    files = [f for f in tiny_corpus.files if f.path.endswith(("ctype.c", "open.c", "errno.c"))]
    container, stats = compress_files(loaded, files, batch_size=2)
    decoded = {d.path: d for d in decompress_container(loaded, container, verify=True)}
    assert {p: d.data for p, d in decoded.items()} == {f.path: f.data for f in files}
    assert all(d.ok for d in decoded.values())
    # the range coder writes what the model's cross-entropy says, give or take its flush words
    coded_bits = 32 * sum(b.words for b in container.batches)
    assert stats.ideal_bits / stats.coded_tokens > 7  # nothing memorized
    assert stats.ideal_bits <= coded_bits <= stats.ideal_bits * 1.01 + 64 * len(container.batches)


def test_plan_batches_groups_by_length():
    assert plan_batches([5, 50, 7, 40, 6], 2) == [[1, 3], [2, 4], [0]]
    with pytest.raises(LaamError):
        plan_batches([1], 0)


def test_truncated_or_corrupt_archive_is_a_clear_error(compressed, tmp_path):
    out, _ = compressed
    data = out.read_bytes()
    cases = {
        "truncated": data[:-5],
        "cut in header": data[:20],
        "flipped payload bit": data[:-3] + bytes([data[-3] ^ 1]) + data[-2:],
        "not an archive": b"hello world",
        "garbled header": data[:len(MAGIC) + 4] + b"\0" * 30 + data[len(MAGIC) + 34:],
        "extra bytes": data + b"\0\0\0\0",
    }
    for name, broken in cases.items():
        path = tmp_path / f"{name}.laamz"
        path.write_bytes(broken)
        with pytest.raises(LaamError, match="corrupt|truncated|not a LaaM"):
            read_container(path)


def _tampered(source: Path, target: Path, change) -> Path:
    """A well-formed copy of an archive (valid CRC) whose contents `change` edited."""
    container = read_container(source)
    change(container)
    write_container(container, target)
    return target


def test_cli_decompress_verify_catches_a_mismatch(compressed, tiny_model_dir, tiny_corpus, tmp_path):
    from laam.cli import app

    out, _ = compressed
    runner = CliRunner()
    result = runner.invoke(app, ["decompress", "--model", str(tiny_model_dir), str(out), "--out",
                                 str(tmp_path / "good"), "--verify", "--quiet"])
    assert result.exit_code == 0, result.output
    for f in tiny_corpus.files:
        assert (tmp_path / "good" / f.path).read_bytes() == f.data
    assert "bytes/s" in result.output

    tampered = _tampered(out, tmp_path / "tampered.laamz", lambda c: setattr(c.files[0], "sha256", "0" * 64))
    name = read_container(tampered).files[0].path
    result = runner.invoke(app, ["decompress", "--model", str(tiny_model_dir), str(tampered), "--out",
                                 str(tmp_path / "bad"), "--verify", "--quiet"])
    assert result.exit_code != 0
    assert isinstance(result.exception, LaamError) and name in str(result.exception)
    assert "SHA-256" in str(result.exception)


def test_container_refuses_other_weights_and_unsafe_paths(compressed, loaded, tmp_path):
    out, _ = compressed
    other = _tampered(out, tmp_path / "other.laamz", lambda c: c.header["model"].update(weights_sha256="f" * 64))
    with pytest.raises(LaamError, match="other weights"):
        list(decompress_container(loaded, read_container(other)))
    other = _tampered(out, tmp_path / "tok.laamz", lambda c: c.header["model"].update(tokenizer_sha256="0" * 64))
    with pytest.raises(LaamError, match="another tokenizer"):
        list(decompress_container(loaded, read_container(other)))
    escape = _tampered(out, tmp_path / "escape.laamz", lambda c: setattr(c.files[0], "path", "../escape.c"))
    with pytest.raises(LaamError, match="unsafe"):
        read_container(escape)


def test_decoding_in_another_environment_warns(compressed, loaded, tiny_corpus, tmp_path):
    out, _ = compressed
    moved = _tampered(out, tmp_path / "moved.laamz", lambda c: c.header["environment"].update(torch="1.0"))
    warnings = []
    decoded = {d.path: d.data for d in decompress_container(loaded, read_container(moved), warn=warnings.append)}
    assert decoded == {f.path: f.data for f in tiny_corpus.files}  # same software in truth, so still exact
    assert len(warnings) == 1 and "torch 1.0 -> " in warnings[0]


def test_cli_compress_selects_files_and_reports(tiny_model_dir, tmp_path):
    from laam.cli import app

    out = tmp_path / "ctype.laamz"
    result = CliRunner().invoke(app, ["compress", "--model", str(tiny_model_dir), "--out", str(out), "--files",
                                      "*/ctype.c", "--no-archive-baselines", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    assert [f.path for f in read_container(out).files] == ["linux/lib/ctype.c"]
    report = json.loads((tmp_path / "compression.json").read_text())
    assert report["corpus"]["files"] == 1 and report["roundtrip"]["verified"] == 1
    assert report["corpus"]["training_corpus"] and report["baselines"]["archive"] is None
    from laam.model.binding import binding_problems

    # bound to the folder it ran on, with its selection: the card quotes it only while these match
    assert report["corpus"]["selected"] == report["binding"]["selection"] == "*/ctype.c"
    assert binding_problems(report, tiny_model_dir) == []
    assert "bits/byte" in result.output and "bytes/s" in result.output
    result = CliRunner().invoke(app, ["compress", "--model", str(tiny_model_dir), "--out", str(out), "--files",
                                      "nothing/*", "--quiet"])
    assert isinstance(result.exception, LaamError) and "matches none" in str(result.exception)


def test_write_container_is_atomic_and_readable(compressed, tmp_path):
    out, _ = compressed
    container = read_container(out)
    copy = tmp_path / "copy.laamz"
    size = write_container(container, copy)
    assert size.total == out.stat().st_size == size.header + size.checksums + size.payload + size.trailer
    assert size.checksums == 32 * len(container.files)
    assert copy.read_bytes() == out.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.laamz"]  # no temporary file left


@pytest.mark.slow
def test_cli_compress_archive_baselines_are_the_xz_commands_figure(tiny_model_dir, tarball, tmp_path):
    """The archive baseline is computed on the release's tar itself: its size, and the size the `xz -9e` command
    gives on those very bytes (for Linux 1.0's tar: 934,028 bytes, 1.445 bits/byte)."""
    from laam.cli import app

    result = CliRunner().invoke(app, ["compress", "--model", str(tiny_model_dir), "--out", str(tmp_path / "a.laamz"),
                                      "--files", "*/errno.c", "--no-roundtrip", "--device", "cpu", "--quiet"])
    assert result.exit_code == 0, result.output
    archive = json.loads((tmp_path / "compression.json").read_text())["baselines"]["archive"]
    tar = lzma.decompress(Path(tarball).read_bytes())
    assert archive["name"] == "linux-1.0.tar" and archive["bytes"] == len(tar)
    xz = subprocess.run(["xz", "-9e", "-c"], input=tar, capture_output=True, check=True).stdout
    assert archive["xz -9e"]["bytes"] == len(xz)
    rates = [archive[name]["bits_per_byte"] for name in ("gzip -9", "zstd -19", "xz -9e")]
    assert rates == sorted(rates, reverse=True)


def test_cli_decompress_uses_the_archives_thread_count_by_default(tiny_model_dir, tiny_corpus, tmp_path):
    """The thread count can change float sums, so decoding follows the encoder's unless told otherwise."""
    import torch

    from laam.cli import app

    out = tmp_path / "ctype.laamz"
    runner = CliRunner()
    result = runner.invoke(app, ["compress", "--model", str(tiny_model_dir), "--out", str(out), "--files",
                                 "*/ctype.c", "--no-archive-baselines", "--no-roundtrip", "--threads", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert read_container(out).header["environment"]["threads"] == 1
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        result = runner.invoke(app, ["decompress", "--model", str(tiny_model_dir), str(out), "--out",
                                     str(tmp_path / "tree"), "--quiet"])
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1 and "another environment" not in result.output
        assert (tmp_path / "tree" / "linux" / "lib" / "ctype.c").read_bytes() == next(
            f.data for f in tiny_corpus.files if f.path == "linux/lib/ctype.c")
    finally:
        torch.set_num_threads(before)
