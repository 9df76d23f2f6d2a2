"""Getting a release: version forms, a real HTTP mirror on loopback, checksums, broken transfers, the cache."""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
from functools import partial
from pathlib import Path

import pytest

from laam.data.fetch import fetch_release, parse_checksums, parse_version
from laam.errors import LaamError

XZ_SHA = "97f8c4fe9b7a36edee8e2aa7e4a2306e68a7aed0f746699900b50db34a099155"


@pytest.mark.parametrize("text, version, folder", [
    ("1.0", "1.0", "v1.0"), ("v1.0/1.0", "1.0", "v1.0"), ("1.2.13", "1.2.13", "v1.2"),
    ("2.6.39", "2.6.39", "v2.6"), ("6.9.4", "6.9.4", "v6.x"), ("v3.0", "3.0", "v3.x"),
    ("2.6.32.71", "2.6.32.71", "v2.6"),
])
def test_versions_as_users_write_them(text, version, folder):
    kernel = parse_version(text)
    assert (kernel.version, kernel.folder) == (version, folder)


@pytest.mark.parametrize("text", ["1", "one", "1.x", "6.9.4.1.2", "../1.0", ""])
def test_malformed_version_names_the_accepted_forms(text):
    with pytest.raises(LaamError, match="1.2.13, 2.6.39"):
        parse_version(text)


def test_wrong_folder_in_original_form():
    with pytest.raises(LaamError, match="lives in folder v1.0/, not v2.6/"):
        parse_version("v2.6/1.0")


def test_checksum_list_parsing_ignores_pgp_armour():
    text = (f"-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n{XZ_SHA}  linux-1.0.tar.xz\n"
            "-----BEGIN PGP SIGNATURE-----\nabc\n")
    assert parse_checksums(text) == {"linux-1.0.tar.xz": XZ_SHA}


class _Handler(http.server.SimpleHTTPRequestHandler):
    truncate = False

    def log_message(self, *args):
        pass

    def copyfile(self, source, outputfile):
        if self.truncate and self.path.endswith(".tar.xz"):  # announce the full length, send half, hang up
            data = source.read()
            outputfile.write(data[: len(data) // 2])
            outputfile.flush()
            self.close_connection = True
            return
        super().copyfile(source, outputfile)


@pytest.fixture
def serve():
    servers = []

    def start(root: Path, truncate: bool = False) -> str:
        handler = type("Handler", (_Handler,), {"truncate": truncate})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _cached_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*") if p.is_file())


def _xz_sha(mirror: Path) -> str:
    return hashlib.sha256((mirror / "v1.0" / "linux-1.0.tar.xz").read_bytes()).hexdigest()


def test_http_download_is_verified_and_cached(mirror, serve, tmp_path):
    url = serve(mirror)
    archive = fetch_release("1.0", url, tmp_path)
    assert archive.sha256 == _xz_sha(mirror)
    assert archive.path == tmp_path / "archives" / "v1.0" / "linux-1.0.tar.xz"
    assert archive.verified_against == url + "v1.0/sha256sums.txt"
    assert _cached_files(tmp_path) == ["linux-1.0.tar.xz", "linux-1.0.tar.xz.json"]
    # Reuse needs no network: a dead mirror still works once the archive is cached.
    again = fetch_release("1.0", "http://127.0.0.1:9/", tmp_path)
    assert again.sha256 == _xz_sha(mirror) and again.source_url == archive.source_url


def test_local_mirror_folder(mirror, tmp_path):
    archive = fetch_release("v1.0/1.0", str(mirror), tmp_path)
    assert archive.sha256 == _xz_sha(mirror) and archive.verified_against.endswith("sha256sums.txt")


def test_falls_back_to_gz_when_xz_is_missing(mirror, serve, tmp_path):
    (tmp_path / "m" / "v1.0").mkdir(parents=True)
    shutil.copy(mirror / "v1.0" / "linux-1.0.tar.gz", tmp_path / "m" / "v1.0")
    archive = fetch_release("1.0", serve(tmp_path / "m"), tmp_path / "cache")
    assert archive.path.name == "linux-1.0.tar.gz" and archive.verified_against is None


def test_checksum_mismatch_is_an_error_and_leaves_nothing(mirror, serve, tmp_path):
    bad = tmp_path / "m" / "v1.0"
    bad.mkdir(parents=True)
    shutil.copy(mirror / "v1.0" / "linux-1.0.tar.xz", bad)
    (bad / "sha256sums.txt").write_text("0" * 64 + "  linux-1.0.tar.xz\n")
    with pytest.raises(LaamError, match="checksum mismatch"):
        fetch_release("1.0", serve(tmp_path / "m"), tmp_path / "cache")
    assert _cached_files(tmp_path / "cache") == []


def test_connection_dropped_mid_transfer_leaves_no_half_file(mirror, serve, tmp_path):
    with pytest.raises(LaamError, match="download of .* (failed|was cut short)"):
        fetch_release("1.0", serve(mirror, truncate=True), tmp_path)
    assert _cached_files(tmp_path) == []


def test_unreachable_mirror(tmp_path):
    with pytest.raises(LaamError, match="unreachable"):
        fetch_release("1.0", "http://127.0.0.1:9/", tmp_path)


def test_version_the_mirror_lacks(mirror, serve, tmp_path):
    with pytest.raises(LaamError, match=r"not found on .* \(tried v2.6/linux-2.6.39.tar.xz, .*tar.bz2\)"):
        fetch_release("2.6.39", serve(mirror), tmp_path)


def test_unwritable_cache_directory(mirror, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(LaamError, match="not writable"):
        fetch_release("1.0", str(mirror), blocker / "cache")
