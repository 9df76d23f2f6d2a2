"""Helpers of the fault suite (tests/*/test_faults.py): run `laam` as a user would and check that a fault ends
in exactly one `error:` line with exit code 2, and serve folders over HTTP on 127.0.0.1."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Ran:
    code: int
    out: str
    err: str


def cli(capsys, *args: str) -> Ran:
    """`laam ARGS` in this process, through the same `main` the console script runs (exit code, stdout, stderr)."""
    from laam.cli import main

    capsys.readouterr()
    argv = sys.argv
    sys.argv = ["laam", *map(str, args)]
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    finally:
        sys.argv = argv
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)


def laam_process(*args: str, cwd=None, env=None, **kwargs) -> subprocess.Popen:
    """`python -m laam ARGS` as a separate process (for kills, resource limits, and two runs at once)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "NO_COLOR": "1", "COLUMNS": "200",
                   "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "laam", *map(str, args)], cwd=cwd, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def laam_run(*args: str, timeout: float = 300, **kwargs) -> Ran:
    process = laam_process(*args, **kwargs)
    out, err = process.communicate(timeout=timeout)
    return Ran(process.returncode, out, err)


def one_error(ran: Ran, *fragments: str) -> str:
    """The run failed with exit code 2 and exactly one line on stderr, `error: ...`, holding every fragment."""
    lines = [line for line in ran.err.splitlines() if line.strip()]
    assert ran.code == 2, (ran.code, ran.err[-3000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), ran.err[-3000:]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def files_under(folder: Path) -> dict[str, bytes]:
    """Every file under a folder with its bytes (to show that nothing was lost or changed)."""
    folder = Path(folder)
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()} \
        if folder.is_dir() else {}


class Server:
    """http.server on 127.0.0.1 in a thread, serving a folder; `handler` can change what it sends."""

    def __init__(self, root: Path, handler=http.server.SimpleHTTPRequestHandler):
        class Quiet(handler):
            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(root)))
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
