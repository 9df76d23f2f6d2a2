"""The `laam` command as users run it: real subprocesses, one-line errors, environment settings."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest


def laam(*args, env=None, cwd=None):
    environment = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-c", "from laam.cli import main; main()", *args],
                          capture_output=True, text=True, env=environment, cwd=cwd, timeout=300)


def test_fetch_then_stats_offline(release, tmp_path):
    mirror, files = release.mirror, release.files
    sha = hashlib.sha256(release.tarball.read_bytes()).hexdigest()
    fetched = laam("corpus", "fetch", "1.0", "--mirror", str(mirror), "--cache", str(tmp_path), "-q")
    assert fetched.returncode == 0, fetched.stderr
    assert f"{len(files)} archive members" in fetched.stdout
    assert f"included   {len(files)} files, {sum(map(len, files.values())):,} bytes" in fetched.stdout
    assert sha in fetched.stdout
    # Settings from the environment; the cached archive is reused with no mirror reachable.
    stats = laam("corpus", "stats", "--json", "-q", env={"LAAM_CACHE": str(tmp_path), "LAAM_MIRROR": "http://127.0.0.1:9/"})
    assert stats.returncode == 0, stats.stderr
    data = json.loads(stats.stdout)
    assert data["members"] == data["included"] == len(files)
    assert data["by_directory"]["total"]["lines"] == sum(d.count(b"\n") for d in files.values())
    original = laam("corpus", "stats", "--filter", "original", "-q", env={"LAAM_CACHE": str(tmp_path)})
    sources = sum(path.endswith((".c", ".h")) for path in files)  # the original filter's kinds in this tree
    assert 0 < sources < len(files) and f"{len(files)} archive members, {sources} included" in original.stdout


def test_tokenizer_train_reports_and_round_trips(release, tmp_path):
    kernel = {path: data for path, data in release.files.items() if path.startswith("linux/kernel/")}
    result = laam("tokenizer", "train", "1.0", "--mirror", str(release.mirror), "--cache", str(tmp_path),
                  "--include", "kernel/", "--vocab-size", "2048", "--out", str(tmp_path / "tok"), "-q")
    assert result.returncode == 0, result.stderr
    assert "vocab      2,048" in result.stdout
    assert f"round trip {len(kernel)} of {len(kernel)} records exact" in result.stdout
    stats = laam("corpus", "stats", "1.0", "--cache", str(tmp_path), "--include", "linux/kernel/",
                 "--tokenizer", str(tmp_path / "tok"), "--json", "-q")
    assert 0 < json.loads(stats.stdout)["by_directory"]["total"]["tokens"] < sum(map(len, kernel.values()))


@pytest.mark.parametrize("args, message", [
    (["corpus", "fetch", "1.x"], "malformed kernel version '1.x'"),
    (["corpus", "fetch", "1.3.5"], "linux 1.3.5 not found on"),
    (["corpus", "fetch", "1.0", "--mirror", "http://127.0.0.1:9/"], "unreachable"),
    (["corpus", "fetch", "1.0", "--include", "nothing/"], "no files left after filters"),
    (["corpus", "fetch", "1.0", "--filter", "everything"], "unknown filter 'everything'"),
    (["tokenizer", "train", "1.0", "--vocab-size", "100"], "smaller than the byte alphabet"),
])
def test_bad_input_is_one_clear_line(mirror, tmp_path, args, message):
    mirror_args = [] if "--mirror" in args else ["--mirror", str(mirror)]
    result = laam(*args, *mirror_args, "--cache", str(tmp_path), "-q")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr


def test_unwritable_cache_is_one_clear_line(mirror, tmp_path):
    (tmp_path / "file").write_text("x")
    result = laam("corpus", "fetch", "1.0", "--mirror", str(mirror), "--cache", str(tmp_path / "file" / "c"))
    assert result.returncode == 2 and "not writable" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_help_explains_every_option_with_its_default():
    result = laam("corpus", "fetch", "--help")
    assert result.returncode == 0
    for option in ("--mirror", "--cache", "--filter", "--include", "--exclude", "--max-file-size", "LAAM_MIRROR",
                   "https://cdn.kernel.org/pub/linux/kernel/", "1048576"):
        assert option in result.stdout, option


def test_help_states_the_margin_and_lm_extraction_defaults():
    """The CLI keeps torch out of its import (the audit's defaults live in modules that import it), so `laam audit`'s
    help text names them as numbers: they must be the ones the code uses. `laam train --min-margin` shows
    TrainConfig's own default (tests/cli/test_options.py), which the audit's threshold must equal."""
    import typer

    from laam.cli import app
    from laam.proof.audit import AuditConfig
    from laam.proof.lm_extraction import EXAMPLES
    from laam.train.config import MIN_MARGIN, TrainConfig

    command = typer.main.get_command(app)
    helps = {(name, p.name): p.help for name, sub in command.commands.items() for p in sub.params}
    assert TrainConfig().min_margin == AuditConfig().safe_margin == MIN_MARGIN
    assert f"(default {MIN_MARGIN:.1f}:" in helps[("audit", "safe_margin")]
    assert f"(default {EXAMPLES:,}," in helps[("audit", "lm_examples")] and AuditConfig().lm_examples == EXAMPLES
