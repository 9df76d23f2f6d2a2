"""A download stops at the size it must have (Content-Length, or a cap far above any kernel archive
when the mirror announces none) with one line; temporary files of killed runs are removed by the next run; and
files are written with the mode the umask gives, like the rest of their folder."""

from __future__ import annotations

import http.server
import os
import signal
import subprocess
import sys
import threading

import pytest

from laam.data import fetch
from laam.io import atomic_folder, atomic_write_bytes
from tests.faults import ROOT, cli, one_error

CAP = 1 << 20


class _Endless(http.server.BaseHTTPRequestHandler):
    """A mirror whose linux-1.0.tar.xz is an endless body with no Content-Length (HTTP/1.0: ends when closed)."""

    sent = 0

    def log_message(self, *args):
        pass

    def _archive(self) -> bool:
        if self.path.endswith("/v1.0/linux-1.0.tar.xz"):
            return True
        self.send_error(404)
        return False

    def do_HEAD(self):
        if self._archive():
            self.send_response(200)
            self.end_headers()

    def do_GET(self):
        if not self._archive():
            return
        self.send_response(200)
        self.end_headers()
        block = b"\xfd7zXZ\0" + bytes(1 << 16)
        try:
            while type(self).sent < 50 * CAP:  # a safety stop for the test itself: 50 times the cap
                self.wfile.write(block)
                type(self).sent += len(block)
        except OSError:  # the client hung up: what the bound is for
            pass


@pytest.fixture
def endless_mirror():
    handler = type("Handler", (_Endless,), {"sent": 0})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", handler
    server.shutdown()
    server.server_close()


def test_an_endless_body_stops_at_the_cap_with_one_line(endless_mirror, capsys, tmp_path, monkeypatch):
    url, handler = endless_mirror
    monkeypatch.setattr(fetch, "MAX_DOWNLOAD", CAP)
    ran = cli(capsys, "corpus", "fetch", "1.0", "--mirror", url, "--cache", tmp_path, "-q")
    one_error(ran, f"sent more than {CAP:,} bytes", "the limit for a release archive", "nothing was cached")
    assert handler.sent < 10 * CAP  # stopped near the cap, not at the test's own safety stop
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_cap_is_far_above_any_kernel_archive():
    assert fetch.MAX_DOWNLOAD >= 1 << 30


_HOLD = """
import sys, time
from pathlib import Path
from laam.io import atomic_file, atomic_folder
target = Path(sys.argv[1])
if sys.argv[2] == "file":
    with atomic_file(target) as handle:
        handle.write(b"half of it")
        handle.flush()
        print("writing", flush=True)
        time.sleep(120)
else:
    with atomic_folder(target) as scratch:
        (scratch / "weights").write_bytes(b"half of it")
        print("writing", flush=True)
        time.sleep(120)
"""


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_what_a_killed_writer_left_is_removed_by_the_next_write(tmp_path, capsys, kind):
    target = tmp_path / ("model.gguf" if kind == "file" else "model")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writer = subprocess.Popen([sys.executable, "-c", _HOLD, str(target), kind], env=env, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        left = [p for p in tmp_path.iterdir() if p != target]
        assert len(left) == 1
        atomic_write_bytes(tmp_path / "other.bin", b"x")  # another target's write leaves it alone
        if kind == "file":  # a write of the same target while the writer lives leaves its file alone too
            atomic_write_bytes(target, b"mine")
        else:
            with atomic_folder(target) as scratch:
                (scratch / "weights").write_bytes(b"mine")
        assert left[0].exists()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
    capsys.readouterr()
    if kind == "file":
        atomic_write_bytes(target, b"whole")
        assert target.read_bytes() == b"whole"
    else:
        with atomic_folder(target) as scratch:
            (scratch / "weights").write_bytes(b"whole")
        assert (target / "weights").read_bytes() == b"whole"
    assert not left[0].exists()
    assert f"removed {left[0]}, left by an interrupted run" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, "other.bin"])


def test_a_folder_written_by_safetensors_gets_the_umask_modes(tmp_path):
    import torch
    from safetensors.torch import save_file

    old = os.umask(0o027)
    try:
        with atomic_folder(tmp_path / "model") as scratch:
            save_file({"w": torch.zeros(2)}, str(scratch / "model.safetensors"))  # written 0600 by safetensors
            (scratch / "config.json").write_text("{}")
            (scratch / "sub").mkdir()
            (scratch / "sub" / "run.py").write_text("")
            (scratch / "sub" / "run.py").chmod(0o700)
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777 for p in tmp_path.rglob("*")}
    assert modes == {"model": 0o750, "model/model.safetensors": 0o640, "model/config.json": 0o640,
                     "model/sub": 0o750, "model/sub/run.py": 0o750}
