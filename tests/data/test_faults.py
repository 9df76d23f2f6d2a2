"""Faults in getting and reading a release: damaged and cut archives, poisoned caches, killed
downloads, bad sources and names, huge members, markers inside files. Each case runs `laam` as a user
would and checks the exit code, the one `error:` line, and that nothing was lost or left behind."""

from __future__ import annotations

import gzip
import http.server
import io
import json
import shutil
import signal
import tarfile
import time
from pathlib import Path

import pytest

from tests.faults import Server, cli, files_under, laam_process, one_error


def _flip(data: bytes, at: float) -> bytes:
    damaged = bytearray(data)
    damaged[int(len(damaged) * at)] ^= 0xFF
    return bytes(damaged)


def _fetch(capsys, source, cache: Path, *more: str):
    return cli(capsys, "corpus", "fetch", str(source), "--cache", str(cache), "-q", *more)


@pytest.mark.parametrize("at", [0.5, 0.3])
def test_gz_with_one_byte_flipped_is_refused(release, capsys, tmp_path, at):
    """A damaged .tar.gz is refused as a whole (its CRC), not read up to the damage or past it with a wrong file."""
    bad = tmp_path / "linux-1.0.tar.gz"
    bad.write_bytes(_flip(release.gz.read_bytes(), at))
    one_error(_fetch(capsys, bad, tmp_path / "cache"), "corrupt or truncated", str(bad), "CRC check failed")
    assert not (tmp_path / "cache" / "corpus").exists()  # no manifest of a partial corpus
    assert bad.is_file()  # the user's own file is theirs: reported, not removed


def test_plain_tar_cut_at_a_member_boundary_is_refused(release, capsys, tmp_path):
    """A tar cut cleanly between two members reads as a smaller release: only its missing end-of-archive marker
    shows the cut, and that is refused."""
    plain = gzip.decompress(release.gz.read_bytes())
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        offsets = [m.offset for m in tar.getmembers()]
    cut = offsets[len(offsets) // 2]  # the header of the middle member starts here
    bad = tmp_path / "linux-1.0.tar"
    bad.write_bytes(plain[:cut])
    one_error(_fetch(capsys, bad, tmp_path / "cache"), "corrupt or truncated", "without its end-of-archive marker")
    assert not (tmp_path / "cache" / "corpus").exists()


def test_xz_with_one_byte_flipped_is_one_line(release, capsys, tmp_path):
    """A damaged .tar.xz is one `error:` line naming the file, not the decompressor's traceback."""
    bad = tmp_path / "linux-1.0.tar.xz"
    bad.write_bytes(_flip(release.tarball.read_bytes(), 0.5))
    one_error(_fetch(capsys, bad, tmp_path / "cache"), "corrupt or truncated", str(bad))
    assert not (tmp_path / "cache" / "corpus").exists()


def _manifests(cache: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in (cache / "corpus").glob("*/manifest.jsonl")}


def test_corpus_cache_folders_are_keyed_by_content(release, capsys, tmp_path):
    """Corpus cache folders are named by content, not by release and filters: another archive of the same name,
    and the unpacked tree of the same release, each get a folder of their own and leave the first manifest as
    it was."""
    cache = tmp_path / "cache"
    assert _fetch(capsys, release.tarball, cache).code == 0
    first = _manifests(cache)
    other = tmp_path / "other" / "linux-1.0.tar.gz"  # same name, one member fewer
    other.parent.mkdir()
    with tarfile.open(release.gz) as source, tarfile.open(other, "w:gz") as target:
        for member in source:
            if member.name != "linux/README":
                target.addfile(member, source.extractfile(member) if member.isreg() else None)
    assert _fetch(capsys, other, cache).code == 0
    with tarfile.open(release.tarball) as tar:
        tar.extractall(tmp_path / "tree", filter="data")
    assert _fetch(capsys, tmp_path / "tree" / "linux", cache).code == 0
    after = _manifests(cache)
    assert len(after) == 3 and all(after[name] == data for name, data in first.items())


class _HTMLHandler(http.server.SimpleHTTPRequestHandler):
    """A mirror that answers every archive request with a web page (a portal, a misconfigured CDN)."""

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        if not self.path.endswith(".tar.xz"):
            return self.send_error(404)
        page = b"<html><body>Welcome! Please sign in.</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        if self.command == "GET":
            self.wfile.write(page)


class _CutHandler(http.server.SimpleHTTPRequestHandler):
    """HTTP/1.0 without Content-Length: the body ends when the server hangs up, here after half of it."""

    protocol_version = "HTTP/1.0"

    def do_GET(self):
        if not self.path.endswith(".tar.xz"):
            return self.send_error(404)
        data = (Path(self.directory) / self.path.lstrip("/")).read_bytes()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])


def _mirror_of(root: Path, content: bytes) -> Path:
    (root / "v1.0").mkdir(parents=True)
    (root / "v1.0" / "linux-1.0.tar.xz").write_bytes(content)
    return root  # no sha256sums: nothing vouches for the download


@pytest.mark.parametrize("case", ["html", "cut-without-length", "empty"])
def test_a_bad_download_is_never_cached(release, capsys, tmp_path, case):
    """A download that is not a whole archive is not cached, so the next run against a good mirror succeeds."""
    good_bytes = release.tarball.read_bytes()
    root = _mirror_of(tmp_path / "bad", b"" if case == "empty" else good_bytes)
    handler = {"html": _HTMLHandler, "cut-without-length": _CutHandler}.get(case, http.server.SimpleHTTPRequestHandler)
    server = Server(root, handler)
    try:
        ran = cli(capsys, "corpus", "fetch", "1.0", "--mirror", server.url, "--cache", str(tmp_path / "cache"), "-q")
    finally:
        server.close()
    one_error(ran, "is not a complete release archive", "nothing was cached")
    assert files_under(tmp_path / "cache") == {}
    good = Server(_mirror_of(tmp_path / "good", good_bytes))
    try:
        again = cli(capsys, "corpus", "fetch", "1.0", "--mirror", good.url, "--cache", str(tmp_path / "cache"), "-q")
    finally:
        good.close()
    assert again.code == 0 and f"{len(release.files)} archive members" in again.out, again.err


def test_a_damaged_file_in_the_cache_is_removed(release, capsys, tmp_path):
    """A cache poisoned by an older laam (a cut file recorded as fetched) is removed when found bad, with a message."""
    cached = tmp_path / "cache" / "archives" / "v1.0" / "linux-1.0.tar.xz"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(release.tarball.read_bytes()[: release.tarball.stat().st_size // 2])
    import hashlib

    meta = {"source_url": "https://example.invalid/linux-1.0.tar.xz", "verified_against": None,
            "sha256": hashlib.sha256(cached.read_bytes()).hexdigest()}
    cached.with_name(cached.name + ".json").write_text(json.dumps(meta))
    ran = cli(capsys, "corpus", "fetch", "1.0", "--mirror", str(release.mirror), "--cache", str(tmp_path / "cache"),
              "-q")
    one_error(ran, "corrupt or truncated", "removed it from the cache, run again")
    assert files_under(tmp_path / "cache") == {}
    again = cli(capsys, "corpus", "fetch", "1.0", "--mirror", str(release.mirror), "--cache",
                str(tmp_path / "cache"), "-q")
    assert again.code == 0, again.err


def test_a_cached_archive_that_changed_is_fetched_again(release, capsys, tmp_path):
    mirror = release.mirror
    cache = tmp_path / "cache"
    assert cli(capsys, "corpus", "fetch", "1.0", "--mirror", str(mirror), "--cache", str(cache), "-q").code == 0
    cached = cache / "archives" / "v1.0" / "linux-1.0.tar.xz"
    cached.write_bytes(_flip(cached.read_bytes(), 0.5))
    ran = cli(capsys, "corpus", "fetch", "1.0", "--mirror", str(mirror), "--cache", str(cache), "-q")
    assert ran.code == 0 and f"removed {cached} from the cache: it no longer matches the SHA-256" in ran.err, ran.err
    assert cached.read_bytes() == release.tarball.read_bytes()


class _SlowHandler(http.server.SimpleHTTPRequestHandler):
    """Sends an archive in small pieces, slowly (the synthetic 1.0 in about a second), so a download can be killed
    in the middle."""

    def copyfile(self, source, outputfile):
        while chunk := source.read(128):
            outputfile.write(chunk)
            outputfile.flush()
            time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_a_killed_download_leaves_no_part_file_after_the_next_run(mirror, capsys, tmp_path, sig):
    """The `.part` file a killed download leaves is removed by the next run, which then fetches the archive."""
    server = Server(mirror, _SlowHandler)
    folder = tmp_path / "cache" / "archives" / "v1.0"
    try:
        process = laam_process("corpus", "fetch", "1.0", "--mirror", server.url, "--cache", tmp_path / "cache", "-q")
        deadline = time.monotonic() + 120
        while not list(folder.glob("*.part")) and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        time.sleep(0.3)
        process.send_signal(sig)
        process.communicate(timeout=60)
    finally:
        server.close()
    parts = list(folder.glob("*.part"))
    assert parts, "the download was not caught in the middle"
    ran = cli(capsys, "corpus", "fetch", "1.0", "--mirror", str(mirror), "--cache", str(tmp_path / "cache"), "-q")
    assert ran.code == 0 and f"removed {parts[0]}, a partial download" in ran.err, ran.err
    assert sorted(p.name for p in folder.iterdir()) == ["linux-1.0.tar.xz", "linux-1.0.tar.xz.json"]


def test_empty_source_is_refused(capsys, tmp_path, monkeypatch):
    """`laam corpus fetch ''` is an error, not the current folder read as a kernel."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("mine\n")
    one_error(_fetch(capsys, "", tmp_path / "cache"), "no source given")
    assert not (tmp_path / "cache").exists() and (tmp_path / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("path", ["missing/linux-1.0.tar.xz", "linux-9.9.tar.gz", "./nowhere"])
def test_missing_path_says_no_such_file(capsys, tmp_path, monkeypatch, path):
    """A source that looks like a path and is missing says so, not "malformed kernel version"."""
    monkeypatch.chdir(tmp_path)
    one_error(_fetch(capsys, path, tmp_path / "cache"), f"no such file or folder: {path}")


def test_non_utf8_member_name_is_recorded(capsys, tmp_path):
    """A member name that is not UTF-8 is skipped and recorded with `\\xNN` escapes; the manifest and corpus.json
    are both written."""
    path = tmp_path / "names.tar.gz"
    with tarfile.open(path, "w:gz", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tar:
        for name, data in [(b"linux/caf\xe9.c", b"int cafe;\n"), (b"linux/ok.c", b"int ok;\n")]:
            info = tarfile.TarInfo(name.decode("utf-8", "surrogateescape"))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ran = _fetch(capsys, path, tmp_path / "cache")
    assert ran.code == 0, ran.err
    assert "linux/caf\\xe9.c: file name is not valid UTF-8" in ran.out
    (folder,) = (tmp_path / "cache" / "corpus").iterdir()
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert [(r["path"], r["included"]) for r in rows] == [("linux/caf\\xe9.c", False), ("linux/ok.c", True)]
    assert json.loads((folder / "corpus.json").read_text())["included"] == 1


def _huge_tar_gz(path: Path, size: int) -> Path:
    """A .tar.gz of a `size`-byte member of zeros and a small file, made of gzip members without ever holding
    the big member in memory (64 MiB of zeros compressed once and repeated)."""
    block = 64 << 20
    info = tarfile.TarInfo("linux/huge.bin")
    info.size = size
    tail = io.BytesIO()
    with tarfile.open(fileobj=tail, mode="w", format=tarfile.GNU_FORMAT) as tar:
        small = tarfile.TarInfo("linux/ok.c")
        small.size = 8
        tar.addfile(small, io.BytesIO(b"int ok;\n"))
    zeros = gzip.compress(b"\0" * block, compresslevel=9)
    with open(path, "wb") as out:
        out.write(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(size // block):
            out.write(zeros)
        out.write(gzip.compress(tail.getvalue()))
    return path


# VmHWM: this process's own peak (getrusage's ru_maxrss keeps the forking parent's peak across exec on Linux)
_PEAK = """
import re, sys
from laam.data.corpus import CorpusConfig, load_corpus
corpus = load_corpus(CorpusConfig(source=sys.argv[1]), progress=False)
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read())[1]) // 1024
print(len(corpus.files), corpus.manifest[0]["reason"], peak)
"""


@pytest.mark.parametrize("size", [pytest.param(256 << 20, id="256MiB"),
                                  pytest.param(2 << 30, id="2GiB", marks=pytest.mark.slow)])
def test_a_huge_member_is_dropped_from_its_header(tmp_path, size):
    """A member over the size limit is dropped from its tar header, before any of it is read: a 9 MB .tar.gz
    holding one 2 GB member stays far below 2 GB of memory."""
    import subprocess
    import sys

    from tests.faults import ROOT

    path = _huge_tar_gz(tmp_path / "huge.tar.gz", size)
    assert path.stat().st_size < size // 500
    done = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, timeout=600,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    kept, peak_mib = done.stdout.split()[0], int(done.stdout.split()[-1])
    assert kept == "1" and "larger than max file size" in done.stdout
    assert peak_mib < 200, f"peak memory {peak_mib} MiB reading a {size >> 20} MiB member"


@pytest.mark.parametrize("command", [["corpus", "fetch"], ["corpus", "stats"], ["corpus", "manifest"],
                                     ["tokenizer", "train"], ["train"]])
def test_max_file_size_zero_is_refused_by_every_command(mirror, capsys, tmp_path, command):
    """`--max-file-size 0` is refused alike by every command that reads a release."""
    extra = ["--out", str(tmp_path / "out")] if command[0] in ("train", "tokenizer") else []
    extra += ["--preset", "tiny", "--max-steps", "1", "--no-verify", "--threads", "1"] if command == ["train"] else []
    ran = cli(capsys, *command, "1.0", "--mirror", str(mirror), "--cache", str(tmp_path / "cache"),
              "--max-file-size", "0", *extra, "-q")
    one_error(ran, "--max-file-size must be a positive number of bytes")
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache" / "corpus").exists()


def test_a_file_containing_a_record_marker_is_left_out_with_its_path(capsys, tmp_path):
    """A file containing a record marker such as <|end_file|> would end its record early (verification and the
    memorization check would then disagree about it), so it is left out and reported: every record holds each
    marker exactly once and generation and verification see the same records."""
    from laam.data.corpus import CorpusConfig, load_corpus
    from laam.data.records import SPECIAL_TOKENS, split_record
    from laam.data.tokenizer import encode_records, special_ids, train_tokenizer

    path = tmp_path / "markers.tar.gz"
    contents = {"linux/a.c": b"int a;\n", "linux/doc.txt": b"records end with <|end_file|> in LaaM\n",
                "linux/b.c": b"int b; /* <|reserved_7|> */\n", "linux/c.c": b"int c;\n"}
    with tarfile.open(path, "w:gz") as tar:
        for name, data in contents.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    ran = _fetch(capsys, path, tmp_path / "cache")
    assert ran.code == 0, ran.err
    assert "linux/doc.txt: contains the record marker <|end_file|>" in ran.out
    assert "linux/b.c: contains the record marker <|reserved_7|>" in ran.out
    corpus = load_corpus(CorpusConfig(source=str(path)), progress=False)
    assert [f.path for f in corpus.files] == ["linux/a.c", "linux/c.c"]
    tokenizer_dir = tmp_path / "tok"
    train_tokenizer(corpus, tokenizer_dir, vocab_size=300)
    from laam.data.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_dir)
    special = special_ids(tokenizer)
    markers = sorted(special[t] for t in SPECIAL_TOKENS[:4])  # start_file, start_header, end_header, end_file
    for record, ids in zip(corpus.records(), encode_records(tokenizer, corpus.records())):
        assert sorted(i for i in ids if i in special.values()) == markers
        assert split_record(record)[1].encode() == contents[split_record(record)[0]]
    shutil.rmtree(tokenizer_dir)
