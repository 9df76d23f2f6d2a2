"""Faults in a model folder: pickled weights only, and a tokenizer that is not the model's. Every
command that reads a model folder refuses it in one line before using it (laam.model.folder.check_model_folder)."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest

from tests.faults import cli, files_under, one_error

COMMANDS = {
    "generate": lambda m, tmp: ["generate", "--model", m, "--path", "linux/lib/open.c", "--max-new-tokens", "8"],
    "audit": lambda m, tmp: ["audit", "--model", m, "--out", tmp / "audit", "-q"],
    "compress": lambda m, tmp: ["compress", "--model", m, "--out", tmp / "x.laamz", "-q"],
    "card": lambda m, tmp: ["card", "--model", m, "-q"],
    "export-gguf": lambda m, tmp: ["export", "gguf", "--model", m, "--out", tmp / "m.gguf"],
}


class _Payload:
    """What a malicious pytorch_model.bin does when unpickled: here, create a file."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return open, (str(self.sentinel), "w")


@pytest.fixture
def pickled_only(tiny_model_dir, tmp_path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(tmp_path / "pwned")))
    return folder


@pytest.mark.parametrize("command", list(COMMANDS))
def test_pickled_weights_are_never_loaded(capsys, pickled_only, tmp_path, command):
    """A folder holding only pickled weights (pytorch_model.bin) is refused by every command before anything is
    unpickled or written: laam itself never loads a pickle, whatever torch's restricted loader would stop."""
    before = files_under(pickled_only)
    ran = cli(capsys, *COMMANDS[command](pickled_only, tmp_path))
    one_error(ran, "holds only pickled weights (pytorch_model.bin)", "save_pretrained(folder)")
    assert not (tmp_path / "pwned").exists() and files_under(pickled_only) == before


@pytest.fixture(scope="module")
def other_tokenizers(tiny_corpus, tmp_path_factory) -> dict[str, Path]:
    """A tokenizer of another vocabulary, and one of the same size trained on other files."""
    from laam.data.corpus import Corpus
    from laam.data.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("tokenizers")
    fewer = Corpus(tiny_corpus.name, tiny_corpus.config, "", "", tiny_corpus.files[2:], [])
    train_tokenizer(tiny_corpus, root / "smaller", vocab_size=400)
    train_tokenizer(fewer, root / "same-size", vocab_size=512)
    return {"smaller": root / "smaller", "same-size": root / "same-size"}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("kind, message", [("smaller", "the tokenizer has 400 tokens, the model's vocabulary is 512"),
                                           ("same-size", "is not the one the model was trained with")])
def test_a_foreign_tokenizer_is_refused(capsys, tiny_model_dir, other_tokenizers, tmp_path, command, kind, message):
    """A tokenizer that is not the model's, of another size or of the same size, is refused with one line by every
    command, rather than decoding garbage or writing a card for it."""
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(other_tokenizers[kind] / name, folder / name)
    before = files_under(folder)
    ran = cli(capsys, *COMMANDS[command](folder, tmp_path))
    one_error(ran, f"{folder}: the tokenizer and the model do not belong together", message)
    assert files_under(folder) == before and not (tmp_path / "audit").exists()
