"""The tests' own fixtures: the synthetic release is stable and laid out like a mirror, and a missing Linux 1.0
is a loud skip, or a failure under CI=true, never a silent pass."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

from laam.data.fetch import parse_checksums
from tests import kernel_tree

REPO = Path(__file__).resolve().parents[1]


def test_the_synthetic_release_is_byte_stable_and_vouched_for(tmp_path):
    """Written twice, the archives are the same bytes (cached models name them by path and trust them), and
    sha256sums.txt vouches for both."""
    first, second = kernel_tree.write_mirror(tmp_path / "a"), kernel_tree.write_mirror(tmp_path / "b")
    for a, b in ((first.tarball, second.tarball), (first.gz, second.gz)):
        assert a.read_bytes() == b.read_bytes()
    sums = parse_checksums((first.tarball.parent / "sha256sums.txt").read_text())
    assert sums == {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (first.tarball, first.gz)}
    assert 25 <= len(first.files) <= 40 and "linux/COPYING" in first.files


def _run_needing_linux(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    test = tmp_path / "test_needs_linux.py"
    test.write_text("def test_needs_linux(linux_mirror):\n    assert linux_mirror.is_dir()\n")
    env = {**os.environ, "PYTHONPATH": str(REPO), "LAAM_TEST_MIRROR": str(tmp_path / "no-mirror-here")}
    env.pop("CI", None)
    if ci is not None:
        env["CI"] = ci
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider",
                           "-p", "no:randomly", "-q", str(test)], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


def test_a_missing_linux_mirror_skips_loudly(tmp_path):
    ran = _run_needing_linux(tmp_path, None)
    assert ran.returncode == 0, ran.stdout[-2000:]
    assert "1 skipped" in ran.stdout
    assert "1 test skipped: it needs the real Linux 1.0 and found no" in ran.stdout
    assert str(tmp_path / "no-mirror-here") in ran.stdout


def test_a_missing_linux_mirror_fails_under_ci(tmp_path):
    ran = _run_needing_linux(tmp_path, "true")
    assert ran.returncode != 0, ran.stdout[-2000:]
    assert "1 error" in ran.stdout and "CI=true and this test needs the real Linux 1.0" in ran.stdout
