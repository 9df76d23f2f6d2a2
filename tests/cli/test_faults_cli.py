"""Faults a hostile or unlucky user meets on the command line: outputs that would leave --out or
replace a user's file, nonsense numbers, broken recipe files and model folders, a full disk or a read-only
folder. Each case runs `laam` as a user would and checks the exit code, the one `error:` line, and that nothing
was written where nothing should be."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
import torch

from tests.faults import cli, files_under, one_error

PATH = "linux/lib/open.c"


def _enospc(name) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(name))


def _model_copy(tiny_model_dir: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    return folder


@pytest.fixture(scope="module")
def archive(tiny_model_dir, tiny_corpus, tmp_path_factory) -> Path:
    """A `laam compress` archive of one file of the tiny corpus."""
    from laam.model.folder import load_model
    from laam.proof.compress.coder import compress_files
    from laam.proof.compress.container import write_container

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        container, _ = compress_files(load_model(tiny_model_dir), [f for f in tiny_corpus.files if f.path == PATH],
                                      batch_size=1)
    finally:
        torch.set_num_threads(previous)
    path = tmp_path_factory.mktemp("archive") / "open.laamz"
    write_container(container, path)
    return path


def _extract(model: Path, out: Path, cache: Path, *more: str) -> list[str]:
    return ["extract", "--model", model, "--out", out, "--files", "lib/open.c", "--cache", cache, "--threads", "1",
            "-q", *more]


def _decompress(model: Path, archive: Path, out: Path, *more: str) -> list[str]:
    return ["decompress", "--model", model, archive, "--out", out, "-q", *more]


# --- nothing written outside --out, nothing replaced without --force ----------------------------------------------

def test_extract_refuses_a_symlink_leading_out_of_out(capsys, tiny_model_dir, tmp_path):
    """A symlink under --out that leads out of it (`--out/linux -> elsewhere`) is refused: nothing is written
    through it."""
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "linux").symlink_to(tmp_path / "elsewhere")
    ran = cli(capsys, *_extract(tiny_model_dir, tmp_path / "out", tmp_path / "cache"))
    one_error(ran, f"refusing to write {tmp_path / 'out' / PATH}", f"outside {tmp_path / 'out'}")
    assert files_under(tmp_path / "elsewhere") == {}


def test_decompress_refuses_a_symlink_leading_out_of_out(capsys, tiny_model_dir, archive, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "linux").symlink_to(tmp_path / "elsewhere")
    ran = cli(capsys, *_decompress(tiny_model_dir, archive, tmp_path / "out"))
    one_error(ran, f"refusing to write {tmp_path / 'out' / PATH}", f"outside {tmp_path / 'out'}")
    assert files_under(tmp_path / "elsewhere") == {}


def test_a_file_symlinked_out_of_out_is_refused(capsys, tiny_model_dir, archive, tmp_path):
    """The file itself a symlink to a file elsewhere: writing through it would replace that file."""
    victim = tmp_path / "victim.c"
    victim.write_text("mine\n")
    (tmp_path / "out" / "linux" / "lib").mkdir(parents=True)
    (tmp_path / "out" / PATH).symlink_to(victim)
    one_error(cli(capsys, *_decompress(tiny_model_dir, archive, tmp_path / "out", "--force")), "outside")
    assert victim.read_text() == "mine\n"


def test_extract_keeps_an_edited_file_unless_force(capsys, tiny_model_dir, tiny_corpus, tmp_path):
    """An edited file under --out is kept unless --force; the same bytes again are no loss (exit 0)."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    assert cli(capsys, *_extract(tiny_model_dir, out, cache)).code == 0
    assert cli(capsys, *_extract(tiny_model_dir, out, cache)).code == 0  # identical bytes: fine
    (out / PATH).write_bytes(b"edited\n")
    one_error(cli(capsys, *_extract(tiny_model_dir, out, cache)), f"{out / PATH} already exists", "--force")
    assert (out / PATH).read_bytes() == b"edited\n"
    assert cli(capsys, *_extract(tiny_model_dir, out, cache, "--force")).code == 0
    original = next(f.data for f in tiny_corpus.files if f.path == PATH)
    assert (out / PATH).read_bytes() == original


def test_decompress_keeps_an_edited_file_unless_force(capsys, tiny_model_dir, tiny_corpus, archive, tmp_path):
    out = tmp_path / "out"
    (out / "linux" / "lib").mkdir(parents=True)
    (out / PATH).write_bytes(b"edited\n")
    one_error(cli(capsys, *_decompress(tiny_model_dir, archive, out)), f"{out / PATH} already exists", "--force")
    assert (out / PATH).read_bytes() == b"edited\n"
    assert cli(capsys, *_decompress(tiny_model_dir, archive, out, "--force")).code == 0
    assert (out / PATH).read_bytes() == next(f.data for f in tiny_corpus.files if f.path == PATH)


def test_decompress_out_that_is_a_file(capsys, tiny_model_dir, archive, tmp_path):
    """An --out that is a file is one line, and the file is kept."""
    target = tmp_path / "notes.txt"
    target.write_text("keep\n")
    one_error(cli(capsys, *_decompress(tiny_model_dir, archive, target)), f"--out {target} is a file, not a folder")
    assert target.read_text() == "keep\n"


def test_extract_out_that_is_a_file(capsys, tiny_model_dir, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep\n")
    one_error(cli(capsys, *_extract(tiny_model_dir, target, tmp_path / "cache")), f"--out {target} is a file")
    assert target.read_text() == "keep\n"


def test_compress_out_that_is_a_folder(capsys, tiny_model_dir, tmp_path):
    """An --out that is a folder is one line, and nothing is written."""
    folder = tmp_path / "archives"
    folder.mkdir()
    ran = cli(capsys, "compress", "--model", tiny_model_dir, "--out", folder, "--files", "lib/open.c",
              "--cache", tmp_path / "cache", "-q")
    one_error(ran, f"--out {folder} is a folder")
    assert files_under(folder) == {} and not (tmp_path / "compression.json").exists()


# --- numbers validated where they are parsed ------------------------------------------------------------------------

@pytest.mark.parametrize("flags, shown", [
    (["--lr", "nan"], "training setting lr must be a finite number, got nan"),
    (["--lr", "inf"], "training setting lr must be a finite number, got inf"),
    (["--epochs", "0"], "training setting epochs must be > 0, got 0.0"),
    (["--batch-size", "0"], "training setting batch_size must be >= 1, got 0"),
    (["--target", "1.5"], "training setting target must be in (0, 1], got 1.5"),
    (["--log-every", "0"], "training setting log_every must be >= 1, got 0"),
    (["--num-layers", "0"], "model setting num_layers must be >= 1, got 0"),
    (["--warmup-steps", "-1"], "training setting warmup_steps must be >= 0, got -1"),
], ids=["lr-nan", "lr-inf", "epochs-0", "batch-0", "target-1.5", "log-every-0", "num-layers-0", "warmup--1"])
def test_train_refuses_nonsense_numbers(capsys, tmp_path, flags, shown):
    """Nonsense numbers (--epochs 0, --lr nan, …) are one line each, before anything is trained or written."""
    ran = cli(capsys, "train", "--preset", "tiny", "--out", tmp_path / "run", "--cache", tmp_path / "cache", *flags)
    one_error(ran, shown)
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize("flags, shown", [
    (["--max-new-tokens", "-5"], "--max-new-tokens must be >= 1, got -5"),
    (["--temperature", "-1"], "sampling setting temperature must be >= 0, got -1.0"),
    (["--temperature", "nan"], "sampling setting temperature must be a finite number, got nan"),
    (["--top-p", "0"], "sampling setting top_p must be in (0, 1], got 0.0"),
    (["--top-k", "-1"], "sampling setting top_k must be >= 0, got -1"),
], ids=["max-new-tokens", "temperature-negative", "temperature-nan", "top-p", "top-k"])
def test_generate_refuses_nonsense_numbers(capsys, tiny_model_dir, tmp_path, flags, shown):
    """Nonsense generation numbers (--max-new-tokens -5, …) are one line each, and nothing is printed."""
    ran = cli(capsys, "generate", "--model", tiny_model_dir, "--path", PATH, "--cache", tmp_path / "cache", *flags)
    one_error(ran, shown)
    assert ran.out == ""


def test_temperature_zero_is_greedy(capsys, tiny_model_dir, tmp_path):
    """--temperature 0 is greedy, not sampling at 1.0. A prompt the model never saw gives it a spread-out
    distribution, so sampling there would differ from argmax."""
    from laam.engine.sampling import Sampling

    assert Sampling(greedy=False, temperature=0).greedy
    args = ["generate", "--model", tiny_model_dir, "--prompt", "<|start_file|><|start_header|>zz", "--cache",
            tmp_path / "cache", "--max-new-tokens", "40", "--threads", "1"]
    greedy = cli(capsys, *args)
    zero = cli(capsys, *args, "--temperature", "0")
    hot = cli(capsys, *args, "--temperature", "5", "--seed", "1")
    assert greedy.code == zero.code == hot.code == 0
    assert zero.out == greedy.out and hot.out != greedy.out


def test_temperature_zero_is_documented(capsys):
    ran = cli(capsys, "generate", "--help")
    assert ran.code == 0 and "0 is greedy" in " ".join(ran.out.split())


# --- recipe files: one line naming the file and the key --------------------------------------------------------------

RECIPES = {
    "python-tag.yaml": ("model: !!python/object/apply:os.system ['touch PWNED']\n",
                        "line 1: could not determine a constructor for the tag"),
    "syntax.toml": ("[model\nhidden_size = 3\n", "Expected ']' at the end of a table declaration"),
    "wrong-type.toml": ("[train]\nlr = \"fast\"\n", "training setting lr must be float, got 'fast'"),
    "wrong-type-corpus.toml": ("[corpus]\ninclude = \"lib/\"\n",
                               "corpus setting include must be a list of str, got 'lib/'"),
    "nan.toml": ("[train]\nlr = nan\n", "training setting lr must be a finite number, got nan"),
    "scalar-table.toml": ("model = 3\n", "model must be a table of settings, not a number"),
    "list-table.yaml": ("train:\n  - 1\n", "train must be a table of settings, not a list"),
    "top-level-list.yaml": ("- 1\n- 2\n", "must hold tables (corpus, model, train, stages, preset), not a list"),
    "stages-scalar.toml": ("stages = 3\n", "stages must be a list of tables of training settings"),
    "not-utf8.toml": (b"[train]\nlr = 0.1 # \xff\n", "is not UTF-8 text"),
    "unknown-key.yaml": ("model:\n  layers: 2\n", "unknown model setting(s): layers"),
}


@pytest.mark.parametrize("name", list(RECIPES))
def test_a_broken_recipe_file_is_one_line(capsys, tmp_path, monkeypatch, name):
    """A recipe file that is not valid YAML/TOML, or holds the wrong types, is one line naming the file."""
    content, shown = RECIPES[name]
    recipe = tmp_path / name
    recipe.write_bytes(content if isinstance(content, bytes) else content.encode())
    monkeypatch.chdir(tmp_path)
    ran = cli(capsys, "train", "--config", recipe, "--out", tmp_path / "run", "--cache", tmp_path / "cache")
    one_error(ran, f"config file {recipe}", shown)
    assert not (tmp_path / "run").exists() and not (tmp_path / "PWNED").exists()


def test_a_flag_error_is_not_blamed_on_the_recipe_file(capsys, tmp_path):
    recipe = tmp_path / "fine.toml"
    recipe.write_text("[train]\nlr = 0.01\n")
    ran = cli(capsys, "train", "--config", recipe, "--lr", "nan", "--out", tmp_path / "run")
    line = one_error(ran, "training setting lr must be a finite number, got nan")
    assert str(recipe) not in line


# --- model folders whose files disagree or are garbled ----------------------------------------------------------

def test_config_json_that_disagrees_with_the_weights(capsys, tiny_model_dir, tmp_path):
    """A config.json whose shapes disagree with the weights is one line, not a transformers traceback."""
    import json

    folder = _model_copy(tiny_model_dir, tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config["intermediate_size"] += 32
    (folder / "config.json").write_text(json.dumps(config))
    ran = cli(capsys, "generate", "--model", folder, "--path", PATH, "--max-new-tokens", "4")
    one_error(ran, f"{folder}: config.json and the weights disagree", "mlp")


def test_garbled_generation_config_writes_no_card(capsys, tiny_model_dir, tmp_path):
    """A garbled generation_config.json is one line, and `card` writes nothing (not even the manifest)."""
    folder = _model_copy(tiny_model_dir, tmp_path)
    (folder / "generation_config.json").write_text('{"max_new')
    before = files_under(folder)
    one_error(cli(capsys, "card", "--model", folder, "--cache", tmp_path / "cache", "-q"),
              f"{folder}/generation_config.json is unreadable")
    assert files_under(folder) == before


def test_empty_tokenizer_json_in_bom(capsys, tiny_model_dir, tmp_path):
    folder = _model_copy(tiny_model_dir, tmp_path)
    (folder / "tokenizer.json").write_text("")
    before = files_under(folder)
    one_error(cli(capsys, "bom", "--model", folder, "--cache", tmp_path / "cache", "-q"),
              f"{folder / 'tokenizer.json'} is damaged or not a tokenizer")
    assert files_under(folder) == before


@pytest.mark.parametrize("key, value, shown", [("context", "big", "laam.json setting context must be int"),
                                                ("corpus", [1], "laam.json setting corpus must be dict"),
                                                ("stride", 4096, "stride must be in 1..context")])
def test_wrong_types_in_laam_json(capsys, tiny_model_dir, tmp_path, key, value, shown):
    """Wrong types or a stride outside the context in laam.json are one line naming the setting, not a traceback
    from the window rule."""
    import json

    folder = _model_copy(tiny_model_dir, tmp_path)
    info = json.loads((folder / "laam.json").read_text())
    info[key] = value
    (folder / "laam.json").write_text(json.dumps(info))
    ran = cli(capsys, "generate", "--model", folder, "--path", PATH, "--max-new-tokens", "4")
    one_error(ran, f"{folder / 'laam.json'} is unreadable or not a LaaM model's laam.json", shown)


# --- a full disk, a read-only folder ----------------------------------------------------------------------------

def test_export_gguf_on_a_full_disk(capsys, tiny_model_dir, tmp_path, monkeypatch):
    import laam.publish.gguf as gguf_export

    def full(path, *args):
        Path(path).write_bytes(b"GGUF")  # the start of a file, then no room for the rest
        raise _enospc(path)

    monkeypatch.setattr(gguf_export, "_write_gguf", full)
    out = tmp_path / "out"
    out.mkdir()
    ran = cli(capsys, "export", "gguf", "--model", tiny_model_dir, "--out", out / "m.gguf")
    one_error(ran, "could not write", "No space left on device")
    assert files_under(out) == {}


class _FullDisk:
    """A temporary file (tempfile.NamedTemporaryFile's) on a disk with no room left: every write fails as
    write(2) does, with ENOSPC and no file name."""

    def __init__(self, handle):
        self._handle = handle

    def write(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return self._handle.__exit__(*exc)

    def __getattr__(self, name):
        return getattr(self._handle, name)


@pytest.fixture
def full_disk(monkeypatch):
    """Every atomic write (laam.io.atomic_file: cache entries, extracted files) hits a full disk."""
    import laam.io

    real = laam.io.tempfile.NamedTemporaryFile
    monkeypatch.setattr(laam.io.tempfile, "NamedTemporaryFile", lambda *a, **k: _FullDisk(real(*a, **k)))


def test_extract_on_a_full_disk(capsys, tiny_model_dir, tmp_path, full_disk):
    out = tmp_path / "out"
    ran = cli(capsys, *_extract(tiny_model_dir, out, tmp_path / "cache"))
    one_error(ran, f"could not write {out / PATH}: No space left on device", "0 of 1 files written")
    assert files_under(out) == {}


def test_corpus_fetch_on_a_full_disk(capsys, mirror, tmp_path, monkeypatch, full_disk):
    """The fallback: an OSError no stage names is one line with its path; --debug shows the traceback."""
    monkeypatch.setenv("LAAM_DEBUG", "0")  # restored after the test: --debug below sets it to 1
    cache = tmp_path / "cache"
    args = ["corpus", "fetch", "1.0", "--mirror", mirror, "--cache", cache]
    one_error(cli(capsys, *args), f"{cache}", "linux-1.0.tar", "No space left on device", "--debug shows where")
    assert [p for p in cache.rglob("*") if p.is_file()] == []
    with pytest.raises(OSError) as raised:
        cli(capsys, "--debug", *args)
    assert raised.value.errno == errno.ENOSPC


def test_card_on_a_read_only_folder(capsys, tiny_model_dir, tmp_path, monkeypatch):
    """Tests run as root, which a read-only mode does not stop, so the file system's answer is injected where the
    card's first file is written: one line, and the folder as it was."""
    from laam.data.corpus import Corpus

    folder = _model_copy(tiny_model_dir, tmp_path)

    def read_only(self, target):
        raise OSError(errno.EROFS, "Read-only file system", str(Path(target) / "manifest.jsonl"))

    monkeypatch.setattr(Corpus, "write_manifest", read_only)
    before = files_under(folder)
    one_error(cli(capsys, "card", "--model", folder, "--cache", tmp_path / "cache", "-q"),
              f"could not write the model card into {folder}", "Read-only file system")
    assert files_under(folder) == before
