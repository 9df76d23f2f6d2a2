"""Faults around a run folder: --resume with nothing to resume or other settings, --overwrite of a
folder that is not a run, two runs at once, damaged checkpoints, saves that fail. Each case runs `laam train`
as a user would and checks the exit code, the one `error:` line, and that nothing was lost or left behind."""

from __future__ import annotations

import errno
import json
import resource
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.faults import cli, files_under, laam_run, one_error


@pytest.fixture(scope="session")
def train_args(tarball):
    """`train_args(tokenizer, cache, out, *more)`: a 1-layer tiny run on the synthetic release whose learning-rate
    schedule does not depend on its length (so it can be resumed for more steps with the same settings)."""

    def args(tokenizer: Path, cache: Path, out: Path, *more: str) -> list[str]:
        return ["train", str(tarball), "--cache", str(cache), "--preset", "tiny", "--tokenizer", str(tokenizer),
                "--num-layers", "1", "--eval-every", "0", "--threads", "1", "--no-verify", "--no-until-memorized",
                "--decay-steps", "20", "--save-every", "1", "--log-every", "1", "--out", str(out), "-q", *more]

    return args


@pytest.fixture(scope="module")
def base_run(train_args, tiny_tokenizer_dir, tmp_path_factory) -> tuple[Path, Path]:
    """(run folder after 2 steps, with checkpoints step-1 and step-2 and a model; its cache)."""
    from laam.cli import app

    root = tmp_path_factory.mktemp("base")
    result = CliRunner().invoke(app, train_args(tiny_tokenizer_dir, root / "cache", root / "run", "--max-steps", "2"))
    assert result.exit_code == 0, result.output
    return root / "run", root / "cache"


@pytest.fixture
def run_copy(base_run, tmp_path) -> Path:
    shutil.copytree(base_run[0], tmp_path / "run")
    return tmp_path / "run"


def _scratch(run: Path) -> list[Path]:
    return [p for p in run.rglob(".*") if "tmp" in p.name]


def test_resume_with_no_checkpoint_is_an_error(train_args, capsys, tiny_tokenizer_dir, tmp_path, base_run):
    """`--resume` with no checkpoint is an error that leaves the folder as it was (the user's files in model/,
    metrics.jsonl); `--start-fresh` refuses a folder that is not a run, and starts a new one where nothing is."""
    out = tmp_path / "mine"
    (out / "model").mkdir(parents=True)
    (out / "model" / "notes.md").write_text("my notes\n")
    (out / "metrics.jsonl").write_text('{"step": 1, "loss": 1.0}\n')
    before = files_under(out)
    ran = cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], out, "--max-steps", "2", "--resume"))
    one_error(ran, f"nothing to resume in {out}", "--start-fresh")
    assert files_under(out) == before
    refused = cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], out, "--max-steps", "2", "--resume",
                                      "--start-fresh"))
    one_error(refused, "not a LaaM run folder")
    assert files_under(out) == before
    fresh = cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], tmp_path / "new", "--max-steps", "1", "--resume",
                                    "--start-fresh"))
    assert fresh.code == 0 and (tmp_path / "new" / "model" / "laam.json").is_file(), fresh.err


def test_overwrite_refuses_what_is_not_a_run(train_args, capsys, tiny_tokenizer_dir, tmp_path, base_run, run_copy,
                                              monkeypatch):
    """`--overwrite` refuses the current folder, the home folder and any folder that is not a LaaM run, and leaves
    them untouched; it does replace a run folder."""
    work, home = tmp_path / "work", tmp_path / "home"
    for folder in (work, home, tmp_path / "other"):
        folder.mkdir()
        (folder / "thesis.tex").write_text("years of work\n")
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(home))
    one_error(cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], Path("."), "--overwrite")),
              "--overwrite refuses to delete .: it is the current folder")
    one_error(cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], home, "--overwrite")), "it is your home folder")
    one_error(cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], tmp_path, "--overwrite")),
              "it holds the current folder")
    one_error(cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], tmp_path / "other", "--overwrite")),
              "it is not a LaaM run folder (no laam-run.json)")
    for folder in (work, home, tmp_path / "other"):
        assert files_under(folder) == {"thesis.tex": b"years of work\n"}
    overwritten = cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], run_copy, "--overwrite", "--max-steps", "1"))
    assert overwritten.code == 0
    assert [p.name for p in (run_copy / "checkpoints").iterdir()] == ["step-00000001"]


_HOLD = """
import sys, time
from laam.train.run_folder import RunFolder
with RunFolder(sys.argv[1], resume=False, overwrite=False):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_two_runs_into_one_folder(train_args, capsys, tiny_tokenizer_dir, tmp_path, base_run):
    """A second run into a folder a live run holds is refused with one line. Here a laam process holds the run
    folder the way a training does, then dies (SIGKILL), and the next run takes its lock over."""
    import subprocess
    import sys

    from tests.faults import ROOT

    out = tmp_path / "run"
    first = subprocess.Popen([sys.executable, "-c", _HOLD, str(out)], stdout=subprocess.PIPE, text=True,
                             env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    try:
        assert first.stdout.readline().strip() == "holding"
        for flags in ([], ["--resume", "--start-fresh"], ["--overwrite"]):
            ran = cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], out, "--max-steps", "1", *flags))
            one_error(ran, f"run folder {out} is in use by another laam run (pid {first.pid} ")
        assert sorted(p.name for p in out.iterdir()) == ["laam-run.json", "laam.lock"]
    finally:
        first.kill()
        first.wait(timeout=60)
    resumed = cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], out, "--max-steps", "1", "--resume",
                                      "--start-fresh"))
    assert resumed.code == 0 and f"taking over the lock of {out} from a run that is no longer running (pid " \
        f"{first.pid} " in resumed.err, resumed.err
    assert (out / "laam.lock").read_text() == "" and (out / "model" / "laam.json").is_file()


def test_two_trainings_creating_the_same_tokenizer(tiny_corpus, tmp_path, monkeypatch):
    """Two trainings that create the same tokenizer at once both succeed: here the second process renames its
    copy in while the first is about to, and one folder is left, with no temporary folder beside it."""
    import laam.io
    from laam.pipeline import ensure_tokenizer

    folder = tmp_path / "tok"
    real_rename = laam.io.os.rename
    competing = {"done": False}

    def rename_after_a_competitor(source, target):
        if not competing["done"]:
            competing["done"] = True
            ensure_tokenizer(tiny_corpus, 300, folder)  # the other training finishes first
        return real_rename(source, target)

    monkeypatch.setattr(laam.io.os, "rename", rename_after_a_competitor)
    assert ensure_tokenizer(tiny_corpus, 300, folder) == folder
    assert competing["done"] and (folder / "tokenizer.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["tok"]


@pytest.fixture(scope="module")
def other_tokenizer(tiny_corpus, tmp_path_factory) -> Path:
    from laam.data.corpus import Corpus
    from laam.data.tokenizer import train_tokenizer

    fewer = Corpus(tiny_corpus.name, tiny_corpus.config, "", "", tiny_corpus.files[1:], [])
    folder = tmp_path_factory.mktemp("other") / "tok"
    train_tokenizer(fewer, folder, vocab_size=512)
    return folder


@pytest.mark.parametrize("change, flags, shown", [
    ("seed", ["--seed", "1"], "seed 0 -> 1"),
    ("batch", ["--batch-size", "8"], "batch_size 16 -> 8"),
    ("corpus", ["--exclude", "linux/lib/malloc.c", "--exclude", "linux/lib/ctype.c"], "corpus "),
    ("tokenizer", None, "tokenizer "),
    ("schedule", ["--lr", "0.001"], "lr 0.005 -> 0.001"),
    ("model", ["--num-heads", "2", "--num-kv-heads", "2"], "model.num_heads 4 -> 2"),
])
def test_resume_with_other_settings_names_them(train_args, capsys, tiny_tokenizer_dir, base_run, run_copy,
                                               other_tokenizer, change, flags, shown):
    """`--resume` with settings other than the run's (seed, batch, corpus, tokenizer, schedule, model) is refused,
    naming each change, and leaves the run folder as it was."""
    tokenizer = other_tokenizer if change == "tokenizer" else tiny_tokenizer_dir
    before = files_under(run_copy)
    ran = cli(capsys, *train_args(tokenizer, base_run[1], run_copy, "--max-steps", "3", "--resume", *(flags or [])))
    one_error(ran, "cannot resume", "it was trained with other settings", shown, "--allow-change")
    assert files_under(run_copy) == before


def test_an_allowed_change_is_recorded_in_the_history(train_args, capsys, tiny_tokenizer_dir, base_run, run_copy):
    ran = cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], run_copy, "--max-steps", "3", "--resume",
                                  "--seed", "1", "--allow-change", "seed"))
    assert ran.code == 0, ran.err
    training = json.loads((run_copy / "model" / "laam.json").read_text())["training"]
    assert training["history"] == [{"step": 2, "changed": {"seed": [0, 1]}}] and training["steps"] == 3


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


DAMAGES = {
    "truncated-weights": lambda c: _truncate(c / "model.safetensors"),
    "truncated-optimizer": lambda c: _truncate(c / "optimizer.pt"),
    "missing-state": lambda c: (c / "state.json").unlink(),
    "bad-rng": lambda c: (c / "rng.pt").write_bytes(b"\x80\x04garbage" * 10),
    # a checkpoint from before manifests: the damage shows only when loading it
    "bad-rng-no-manifest": lambda c: ((c / "manifest.json").unlink(), (c / "rng.pt").write_bytes(b"garbage")),
}


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous(train_args, capsys, tiny_tokenizer_dir, base_run,
                                                                run_copy, damage):
    """A damaged latest checkpoint is reported and the run resumes from the one before it."""
    latest = run_copy / "checkpoints" / "step-00000002"
    DAMAGES[damage](latest)
    ran = cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], run_copy, "--max-steps", "3", "--resume"))
    assert ran.code == 0, ran.err
    said = " ".join(ran.out.split() + ran.err.split())
    assert f"checkpoint {latest} is damaged" in said and "set aside as damaged-step-00000002" in said
    assert (run_copy / "checkpoints" / "damaged-step-00000002").is_dir()  # kept for inspection
    training = json.loads((run_copy / "model" / "laam.json").read_text())["training"]
    assert training["steps"] == 3
    rows = [json.loads(line) for line in (run_copy / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3]  # resumed from step 1: step 2 trained again


def test_every_checkpoint_damaged_is_one_line(train_args, capsys, tiny_tokenizer_dir, base_run, run_copy):
    for folder in (run_copy / "checkpoints").iterdir():
        _truncate(folder / "model.safetensors")
    ran = cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], run_copy, "--max-steps", "3", "--resume"))
    warnings = [line for line in ran.err.splitlines() if line.startswith("warning: checkpoint")]
    assert len(warnings) == 2 and all("is damaged (model.safetensors has" in w for w in warnings)
    ran.err = "\n".join(line for line in ran.err.splitlines() if line not in warnings)
    one_error(ran, "every checkpoint is damaged")
    assert sorted(p.name for p in (run_copy / "checkpoints").iterdir()) == ["damaged-step-00000001",
                                                                           "damaged-step-00000002"]


def test_out_that_is_a_file(train_args, capsys, tiny_tokenizer_dir, base_run, tmp_path):
    target = tmp_path / "results.csv"
    target.write_text("a,b\n")
    one_error(cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], target)), "is a file, not a folder")
    assert target.read_text() == "a,b\n"


@pytest.mark.parametrize("code, text", [(errno.EROFS, "Read-only file system"),
                                        (errno.ENOSPC, "No space left on device")], ids=["read-only", "disk-full"])
def test_a_save_on_a_read_only_folder_is_one_line(train_args, capsys, tiny_tokenizer_dir, base_run, run_copy,
                                                   monkeypatch, code, text):
    """A checkpoint that cannot be saved, the folder read-only or the disk full, is one line, with no
    `.tmp-step-*` folder left behind and the previous checkpoints intact. (Tests run as root, which a read-only
    mode does not stop, so the file system's answer is injected where the checkpoint is written.)"""
    import laam.train.checkpoint as checkpoint

    before = files_under(run_copy / "checkpoints")

    def refused(*args, **kwargs):
        raise OSError(code, text)

    monkeypatch.setattr(checkpoint.torch, "save", refused)
    ran = cli(capsys, *train_args(tiny_tokenizer_dir, base_run[1], run_copy, "--max-steps", "3", "--resume"))
    one_error(ran, "could not save checkpoint step-00000003", text,
              "the previous checkpoint", "step-00000002 is intact")
    assert files_under(run_copy / "checkpoints") == before and not _scratch(run_copy)


def _limit_file_size():
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))  # python ignores SIGXFSZ: writes get EFBIG


def test_a_save_on_a_full_disk_is_one_line(train_args, tiny_tokenizer_dir, base_run, run_copy):
    """`ulimit -f`: a checkpoint's files cannot be written; that is one line, with no `.tmp-step-*` left behind
    and the previous checkpoint intact."""
    before = files_under(run_copy / "checkpoints")
    ran = laam_run(*train_args(tiny_tokenizer_dir, base_run[1], run_copy, "--max-steps", "3", "--resume"),
                   preexec_fn=_limit_file_size)
    one_error(ran, "could not save checkpoint step-00000003", "File too large", "step-00000002 is intact")
    assert files_under(run_copy / "checkpoints") == before and not _scratch(run_copy)


def test_a_stage_never_starts_from_pickled_weights(tiny_corpus, tiny_tokenizer_dir, tiny_model_dir, tmp_path):
    """A recipe stage's starting weights (init_from) load from safetensors only, like every model folder."""
    import pickle

    from laam.errors import LaamError
    from laam.model.config import ModelConfig
    from laam.model.presets import PRESETS
    from laam.train.config import TrainConfig
    from laam.train.loop import train

    start = tmp_path / "stage-1" / "model"
    shutil.copytree(tiny_model_dir, start)
    (start / "model.safetensors").unlink()
    (start / "pytorch_model.bin").write_bytes(pickle.dumps({"weights": [0.0]}))
    config = TrainConfig(**{**PRESETS["tiny"]["train"], "threads": 1, "verify": False, "max_steps": 1})
    with pytest.raises(LaamError, match="holds only pickled weights.*save_pretrained"):
        train(ModelConfig(**PRESETS["tiny"]["model"]), config, tiny_corpus, tiny_tokenizer_dir, tmp_path / "run",
              tmp_path, init_from=start, progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()
