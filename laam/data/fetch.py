"""Get a kernel release archive: from kernel.org, any mirror laid out like it, or a local file.

Downloads stream into a temporary `.part` file next to the cache entry and are renamed into place
only once complete and verified (against the mirror's checksum list, or, when it lists none, read
end to end as an archive), so the cache holds only good files. A `.part` file left by a killed
download is removed by the next run; a cached archive whose SHA-256 no longer matches its record is
removed and fetched again.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from laam.data.archive import CorruptArchive, verify_archive
from laam.errors import LaamError
from laam.io import atomic_file, atomic_write_text, clean_leftovers, sha256_file
from laam.progress import console, download_bar

DEFAULT_MIRROR = "https://cdn.kernel.org/pub/linux/kernel/"
ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tar.bz2")
CHECKSUM_FILES = ("sha256sums.asc", "sha256sums.txt")
ACCEPTED_FORMS = "1.0, 1.2.13, 2.6.39, 6.9.4 (optionally with a leading v), or the original LaaM's v1.0/1.0"
_VERSION_RE = re.compile(r"^(?:(?P<folder>v\d+\.(?:\d+|x))/)?v?(?P<version>\d+\.\d+(?:\.\d+){0,2})$")


@dataclass(frozen=True)
class KernelVersion:
    version: str  # "1.0", "2.6.39", "6.9.4"
    folder: str  # the mirror's folder: "v1.0", "v2.6", "v6.x"

    @property
    def stem(self) -> str:
        return f"linux-{self.version}"


@dataclass(frozen=True)
class Archive:
    """A release archive on local disk, and where it came from."""

    path: Path
    source_url: str
    sha256: str
    verified_against: str | None  # the checksum list that vouched for it, if any
    cached: bool = False  # a file of laam's cache (removed if found damaged), not the user's own


def parse_version(text: str) -> KernelVersion:
    """`1.0`, `v2.6.39`, `v1.0/1.0` -> the version and its mirror folder (`v1.0`, `v2.6`, `v6.x`)."""
    match = _VERSION_RE.match(text.strip())
    if not match:
        raise LaamError(f"malformed kernel version {text!r}: use {ACCEPTED_FORMS}")
    version = match["version"]
    major, minor = (int(part) for part in version.split(".")[:2])
    folder = f"v{major}.{minor}" if major < 3 else f"v{major}.x"
    if match["folder"] and match["folder"] != folder:
        raise LaamError(f"kernel {version} lives in folder {folder}/, not {match['folder']}/")
    return KernelVersion(version=version, folder=folder)


def is_remote(mirror: str) -> bool:
    return mirror.startswith(("http://", "https://"))


def _join(mirror: str, *parts: str) -> str:
    if is_remote(mirror):
        return mirror.rstrip("/") + "/" + "/".join(parts)
    return str(Path(mirror).joinpath(*parts))


def parse_checksums(text: str) -> dict[str, str]:
    """`sha256sum` lines -> {file name: digest}; PGP clear-sign armour lines are ignored."""
    sums = {}
    for line in text.splitlines():
        match = re.match(r"^([0-9a-fA-F]{64})\s+\*?(\S+)\s*$", line.strip())
        if match:
            sums[match[2]] = match[1].lower()
    return sums


class Mirror:
    """An http(s) mirror or a local folder laid out like kernel.org's `pub/linux/kernel/`."""

    def __init__(self, location: str, timeout: float = 30.0):
        self.remote = is_remote(location)
        if not self.remote and not Path(location).is_dir():
            raise LaamError(f"mirror folder {location} does not exist (give an http(s) URL or a folder)")
        self.location = location if self.remote else str(Path(location).resolve())
        self.client = httpx.Client(timeout=timeout, follow_redirects=True) if self.remote else None

    def url(self, *parts: str) -> str:
        return _join(self.location, *parts)

    def exists(self, *parts: str) -> bool:
        if not self.remote:
            return Path(self.url(*parts)).is_file()
        try:
            response = self.client.head(self.url(*parts))
        except httpx.HTTPError as error:
            raise LaamError(f"mirror {self.location} is unreachable: {error}") from error
        return response.status_code == 200

    def read_text(self, *parts: str) -> str | None:
        if not self.remote:
            path = Path(self.url(*parts))
            return path.read_text(errors="replace") if path.is_file() else None
        try:
            response = self.client.get(self.url(*parts))
        except httpx.HTTPError as error:
            raise LaamError(f"mirror {self.location} is unreachable: {error}") from error
        return response.text if response.status_code == 200 else None

    @contextmanager
    def stream(self, *parts: str) -> Iterator[tuple[int | None, Iterator[bytes]]]:
        """Open one file: (total size or None, chunk iterator)."""
        if not self.remote:
            path = Path(self.url(*parts))
            with open(path, "rb") as handle:
                yield path.stat().st_size, iter(lambda: handle.read(1 << 16), b"")
            return
        with self.client.stream("GET", self.url(*parts)) as response:
            if response.status_code != 200:
                raise LaamError(f"{self.url(*parts)}: HTTP {response.status_code}")
            length = response.headers.get("content-length")
            yield (int(length) if length else None), response.iter_bytes(1 << 16)


def _cache_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, delete=True)
        probe.close()
    except OSError as error:
        raise LaamError(f"cache directory {directory} is not writable ({error.strerror}); "
                        "set --cache or LAAM_CACHE") from error


PART_SUFFIX = ".part"
# The most bytes a download may bring when the mirror does not say its size (no Content-Length): far above any
# kernel archive (the largest, a modern .tar.gz, is about 250 MB), so only a mirror that never stops reaches it.
MAX_DOWNLOAD = 2 << 30


def clean_partial_downloads(directory: Path) -> list[Path]:
    """Remove `.part` files that no running download holds (left by a run that was killed mid-download)."""
    return clean_leftovers(directory, f"*{PART_SUFFIX}", "a partial download left by an interrupted run")


def _download(mirror: Mirror, parts: tuple[str, ...], destination: Path, expected: str | None,
              checksum_url: str | None, progress: bool) -> str:
    """Stream one file into `destination` through a locked `.part` file, renamed into place only when complete
    and verified: against `expected` (the mirror's checksum list), else read end to end as an archive. It stops
    at the size the mirror announced (Content-Length, a local file's size), or at MAX_DOWNLOAD when it announced
    none.
    Returns its SHA-256; on any failure nothing is left in the cache."""
    digest = hashlib.sha256()
    url = mirror.url(*parts)
    try:
        with atomic_file(destination, suffix=PART_SUFFIX) as handle, download_bar(progress) as bar:
            received = 0
            with mirror.stream(*parts) as (total, chunks):
                task = bar.add_task(f"download {parts[-1]}", total=total)
                limit = total if total is not None else MAX_DOWNLOAD
                for chunk in chunks:
                    if received + len(chunk) > limit:  # stopped where it must end, not when the disk is full
                        said = "its Content-Length" if total is not None else "the limit for a release archive"
                        raise LaamError(f"download of {url} sent more than {limit:,} bytes ({said}); stopped, "
                                        "nothing was cached")
                    handle.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    bar.update(task, advance=len(chunk))
                if total is not None and received != total:
                    raise LaamError(f"download of {url} was cut short: {received} of {total} bytes")
            handle.flush()
            actual = digest.hexdigest()
            if expected is not None and actual != expected:
                raise LaamError(f"checksum mismatch for {parts[-1]}: got {actual}, {checksum_url} lists {expected}; "
                                "nothing was cached")
            if expected is None:  # no checksum vouches for it: it must at least be a whole, intact archive
                try:
                    verify_archive(Path(handle.name))
                except CorruptArchive as error:
                    raise LaamError(f"download of {url} is not a complete release archive ({error.detail}; "
                                    f"{received:,} bytes received); nothing was cached") from error
    except httpx.HTTPError as error:
        raise LaamError(f"download of {url} failed: {error!r}") from error
    return actual


def fetch_release(
    version: str, mirror: str = DEFAULT_MIRROR, cache: Path | None = None, progress: bool = True
) -> Archive:
    """Download (or reuse from the cache) the archive of a kernel release, verified when the mirror lists checksums."""
    kernel = parse_version(version)
    cache_dir = Path(cache or default_cache()) / "archives" / kernel.folder
    clean_partial_downloads(cache_dir)
    for suffix in ARCHIVE_SUFFIXES:  # already fetched (and verified at fetch time): no network needed
        cached = _reuse(cache_dir / f"{kernel.stem}{suffix}")
        if cached is not None:
            return cached

    source = Mirror(mirror)
    tried = []
    for suffix in ARCHIVE_SUFFIXES:
        name = f"{kernel.stem}{suffix}"
        tried.append(name)
        if source.exists(kernel.folder, name):
            break
    else:
        tried_paths = ", ".join(f"{kernel.folder}/{t}" for t in tried)
        raise LaamError(f"linux {kernel.version} not found on {mirror} (tried {tried_paths})")

    expected, checksum_url = None, None
    for checksum_name in CHECKSUM_FILES:
        text = source.read_text(kernel.folder, checksum_name)
        if text is not None and name in parse_checksums(text):
            expected, checksum_url = parse_checksums(text)[name], source.url(kernel.folder, checksum_name)
            break

    _cache_writable(cache_dir)
    destination = cache_dir / name
    actual = _download(source, (kernel.folder, name), destination, expected, checksum_url, progress)
    archive = Archive(destination, source.url(kernel.folder, name), actual, checksum_url, cached=True)
    _write_meta(archive)
    return archive


def _reuse(cached: Path) -> Archive | None:
    """A cached archive and its record, if both are there and the file still has the SHA-256 it was fetched
    with; a file that changed since is removed (and fetched again)."""
    meta = cached.with_name(cached.name + ".json")
    if not cached.is_file():
        return None
    if not meta.is_file():  # its record is written last: without one, nothing vouches for the file
        console.print(f"{cached} has no record of the SHA-256 it was fetched with ({meta.name}); not using it, "
                      "fetching it again", highlight=False, soft_wrap=True)
        return None
    try:
        info = json.loads(meta.read_text())
        archive = Archive(cached, info["source_url"], info["sha256"], info.get("verified_against"), cached=True)
    except (OSError, ValueError, KeyError, TypeError):
        archive = None
    if archive is None or sha256_file(cached) != archive.sha256:
        forget(Archive(cached, "", "", None, cached=True))
        console.print(f"removed {cached} from the cache: it no longer matches the SHA-256 recorded when it was "
                      "fetched; fetching it again", highlight=False, soft_wrap=True)
        return None
    return archive


def forget(archive: Archive) -> None:
    """Remove a cached archive and its record (a damaged file must not be reused by later runs)."""
    if archive.cached:
        archive.path.unlink(missing_ok=True)
        archive.path.with_name(archive.path.name + ".json").unlink(missing_ok=True)


def _write_meta(archive: Archive) -> None:
    meta = archive.path.with_name(archive.path.name + ".json")
    atomic_write_text(meta, json.dumps({"source_url": archive.source_url, "sha256": archive.sha256,
                                        "verified_against": archive.verified_against}, indent=1))


def local_archive(path: Path) -> Archive:
    """A tarball the user already has."""
    path = Path(path).resolve()
    if not path.is_file():
        raise LaamError(f"archive {path} does not exist")
    return Archive(path, path.as_uri(), sha256_file(path), None)


def default_cache() -> Path:
    import platformdirs

    return platformdirs.user_cache_path("laam")

