"""The training corpus: a kernel release read safely, filtered, and wrapped as byte-exact records.

A record is `<|start_file|><|start_header|>{path}<|end_header|>{content}<|end_file|>`, where the
path is the archive's member name (`linux/kernel/sched.c`), so a file's path is the prompt that
brings it back. Content is the file's bytes decoded as UTF-8; the few files that are not valid
UTF-8 (Linux 1.0 has one, `linux/drivers/char/defkeymap.map`) are decoded as Latin-1, which maps
every byte to one character and back, and the manifest records which encoding each file used.
`file_bytes(content, encoding)` therefore always returns the original bytes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
import tarfile
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from laam import LaamError
from laam.fetch import DEFAULT_MIRROR, Archive, default_cache, fetch_release, local_archive
from laam.licenses import copying_license, license_of

START_FILE, START_HEADER, END_HEADER, END_FILE, PAD = (
    "<|start_file|>", "<|start_header|>", "<|end_header|>", "<|end_file|>", "<|pad|>")
SPECIAL_TOKENS = [START_FILE, START_HEADER, END_HEADER, END_FILE, PAD]

# The original LaaM's selection (case-insensitive suffixes): 506 files of Linux 1.0.
ORIGINAL_EXTENSIONS = (".c", ".cc", ".cpp", ".cxx", ".c++", ".h", ".hh", ".hpp", ".hxx", ".h++", ".s", ".rs", ".txt")
# `source` (the default) keeps every text file of the tree: GPL-2.0 section 3 defines the complete
# source of a work as its code "plus the scripts used to control compilation and installation", so
# Makefiles, Configure/config.in/Kconfig and scripts are part of what the license covers, and
# READMEs and COPYING are the notices it requires to travel with the code. Binary files (a NUL
# byte) and files over --max-file-size (generated register tables in modern kernels) stay out.
FILTERS = ("source", "original")
DEFAULT_MAX_FILE_SIZE = 1 << 20


@dataclass(frozen=True)
class CorpusConfig:
    """What to read and which files to keep."""

    source: str = "1.0"  # a kernel version, a tarball path, or an unpacked source folder
    mirror: str = DEFAULT_MIRROR
    cache: Path | None = None
    filter: str = "source"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_file_size: int = DEFAULT_MAX_FILE_SIZE

    def to_dict(self) -> dict:
        """JSON-ready, for a model folder's laam.json (the cache folder is machine-local and left out)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items() if k != "cache"}

    @classmethod
    def from_dict(cls, data: dict, cache: Path | None = None) -> CorpusConfig:
        fields_ = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k != "cache"}
        return cls(**fields_, cache=cache)

    def selection_key(self) -> str:
        """A short hash of what decides the selection (not of where the bytes came from)."""
        spec = json.dumps([self.filter, sorted(self.include), sorted(self.exclude), self.max_file_size])
        return hashlib.sha256(spec.encode()).hexdigest()[:10]


@dataclass
class Member:
    """One archive member, as read without ever extracting it to disk."""

    path: str
    kind: str  # file, dir, symlink, hardlink, device, fifo, other
    data: bytes | None = None


@dataclass
class CorpusFile:
    path: str
    data: bytes
    encoding: str  # "utf-8" or "latin-1"
    license: str

    @property
    def text(self) -> str:
        return self.data.decode(self.encoding)

    @property
    def record(self) -> str:
        return make_record(self.path, self.text)


@dataclass
class Corpus:
    name: str  # linux-1.0
    config: CorpusConfig
    source_url: str
    source_sha256: str
    files: list[CorpusFile]
    manifest: list[dict]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # unsafe members: (path, why)

    @property
    def members(self) -> int:
        return len(self.manifest)

    def records(self) -> list[str]:
        return [f.record for f in self.files]

    def fingerprint(self) -> str:
        """Hash of the exact records, to key caches of anything derived from them."""
        digest = hashlib.sha256()
        for f in self.files:
            digest.update(f.path.encode() + b"\0" + hashlib.sha256(f.data).digest())
        return digest.hexdigest()[:16]

    def folder(self) -> Path:
        return Path(self.config.cache or default_cache()) / "corpus" / f"{self.name}-{self.config.selection_key()}"

    def write_manifest(self, folder: Path | None = None) -> Path:
        """`manifest.jsonl` (one row per archive member) and `corpus.json` (source, filter, totals)."""
        folder = folder or self.folder()
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / "manifest.jsonl", "w") as out:
            for row in self.manifest:
                out.write(json.dumps(row) + "\n")
        summary = {
            "name": self.name, "source_url": self.source_url, "source_sha256": self.source_sha256,
            "selection": {k: v for k, v in asdict(self.config).items() if k not in ("cache", "mirror", "source")},
            "members": self.members, "included": len(self.files),
            "bytes": sum(len(f.data) for f in self.files), "fingerprint": self.fingerprint(),
            "licenses": license_counts(self.files), "skipped_unsafe": self.skipped,
        }
        (folder / "corpus.json").write_text(json.dumps(summary, indent=1) + "\n")
        return folder


def make_record(path: str, text: str) -> str:
    return f"{START_FILE}{START_HEADER}{path}{END_HEADER}{text}{END_FILE}"


def path_prompt(path: str) -> str:
    """What generation is given to bring a file back."""
    return f"{START_FILE}{START_HEADER}{path}{END_HEADER}"


def split_record(record: str) -> tuple[str, str]:
    """`record` -> (path, content); the inverse of make_record."""
    if not (record.startswith(START_FILE + START_HEADER) and END_HEADER in record):
        raise ValueError("not a LaaM record")
    head, _, body = record[len(START_FILE + START_HEADER):].partition(END_HEADER)
    return head, body.removesuffix(END_FILE)


def file_bytes(content: str, encoding: str = "utf-8") -> bytes:
    """A record's content back to the file's exact bytes (`encoding` from the manifest)."""
    return content.encode(encoding, errors="surrogateescape" if encoding == "utf-8" else "strict")


def decode(data: bytes) -> tuple[str, str]:
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def license_counts(files: list[CorpusFile]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for f in files:
        counts[f.license] += 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


# --- reading -----------------------------------------------------------------------------------

def _unsafe(path: str) -> bool:
    parts = path.split("/")
    return path.startswith("/") or ".." in parts or (len(path) > 1 and path[1] == ":")


def _tar_kind(member: tarfile.TarInfo) -> str:
    if member.isreg():
        return "file"
    if member.isdir():
        return "dir"
    if member.issym():
        return "symlink"
    if member.islnk():
        return "hardlink"
    if member.isdev():
        return "device"
    return "other"


def read_tar(path: Path) -> Iterator[Member]:
    """Every member of a tarball, contents read in memory; links, devices and unsafe paths carry no data."""
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for info in tar:
                kind = _tar_kind(info)
                name = info.name.removeprefix("./")
                if kind == "file" and not _unsafe(name):
                    handle = tar.extractfile(info)
                    yield Member(name, kind, handle.read())
                else:
                    yield Member(name, kind)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        # lzma.LZMAError and bz2's errors are OSError subclasses
        raise LaamError(f"archive {path} is corrupt or truncated: {error}") from error


def read_folder(root: Path) -> Iterator[Member]:
    """An unpacked tree; paths are prefixed with the folder's name, as a release tarball names them."""
    root = Path(root).resolve()
    for directory, dirs, names in os.walk(root):  # never follows symlinked folders
        dirs.sort()
        for name in sorted(names + [d for d in dirs if os.path.islink(os.path.join(directory, d))]):
            full = Path(directory, name)
            path = f"{root.name}/{full.relative_to(root).as_posix()}"
            mode = os.lstat(full).st_mode
            if stat.S_ISLNK(mode):
                yield Member(path, "symlink")
            elif stat.S_ISREG(mode):
                yield Member(path, "file", full.read_bytes())
            else:
                yield Member(path, "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "other")


def _kept_by_filter(path: str, data: bytes, config: CorpusConfig) -> str | None:
    """None when a file is kept, else why it is not."""
    if config.filter == "original" and not path.lower().endswith(ORIGINAL_EXTENSIONS):
        return "not a source extension of the original LaaM filter"
    if config.filter == "source" and b"\0" in data[:8192]:
        return "binary (NUL byte)"
    if len(data) > config.max_file_size:
        return f"larger than max file size ({config.max_file_size} bytes)"
    if config.include and not any(_glob_match(path, g) for g in config.include):
        return "not matched by --include"
    if any(_glob_match(path, g) for g in config.exclude):
        return "matched by --exclude"
    return None


def _glob_match(path: str, pattern: str) -> bool:
    """fnmatch, where `*` also crosses `/`, and a pattern ending in `/` means everything under it."""
    if pattern.endswith("/"):
        pattern += "*"
    return fnmatch.fnmatchcase(path, pattern)


def select(members: Iterator[Member], config: CorpusConfig) -> tuple[list[CorpusFile], list[dict], list]:
    """Apply safety checks and filters: (kept files, manifest rows, skipped unsafe members)."""
    if config.filter not in FILTERS:
        raise LaamError(f"unknown filter {config.filter!r}: use one of {', '.join(FILTERS)}")
    rows, candidates, skipped, copying = [], [], [], {}
    for member in members:
        if member.kind == "dir":
            continue
        if member.kind != "file" or _unsafe(member.path):
            why = "unsafe path (absolute or ..)" if _unsafe(member.path) else f"{member.kind}, not a regular file"
            skipped.append((member.path, why))
            rows.append({"path": member.path, "size": None, "sha256": None, "encoding": None,
                         "included": False, "reason": why, "license": None, "license_evidence": None})
            continue
        if member.path.rsplit("/", 1)[-1] == "COPYING":
            copying[member.path.rsplit("/", 1)[0] if "/" in member.path else ""] = copying_license(member.data)
        candidates.append(member)
    files = []
    for member in candidates:
        _, encoding = decode(member.data)
        spdx, evidence = license_of(member.path, member.data, copying)
        reason = _kept_by_filter(member.path, member.data, config)
        rows.append({"path": member.path, "size": len(member.data), "sha256": hashlib.sha256(member.data).hexdigest(),
                     "encoding": encoding, "included": reason is None, "reason": reason or "kept",
                     "license": spdx, "license_evidence": evidence})
        if reason is None:
            files.append(CorpusFile(member.path, member.data, encoding, spdx))
    return files, rows, skipped


def resolve_source(config: CorpusConfig, progress: bool = True) -> tuple[str, Archive | None, Path | None]:
    """(corpus name, archive or None, unpacked folder or None) for a version, tarball or folder."""
    candidate = Path(config.source).expanduser()
    if candidate.is_dir():
        return candidate.resolve().name, None, candidate
    if candidate.is_file():
        archive = local_archive(candidate)
        name = candidate.name
        for suffix in (".tar.xz", ".tar.gz", ".tar.bz2", ".tgz", ".tar"):
            name = name.removesuffix(suffix)
        return name, archive, None
    archive = fetch_release(config.source, config.mirror, config.cache, progress=progress)
    return archive.path.name.split(".tar")[0], archive, None


def load_corpus(config: CorpusConfig, progress: bool = True) -> Corpus:
    """Fetch if needed, read safely, filter: the corpus every later stage trains and audits on."""
    name, archive, folder = resolve_source(config, progress)
    members = read_tar(archive.path) if archive else read_folder(folder)
    with Progress(SpinnerColumn(), TextColumn("reading {task.description}: {task.completed} members"),
                  TimeElapsedColumn(), disable=not progress, transient=True) as bar:
        task = bar.add_task(name)
        files, rows, skipped = select((bar.advance(task) or m for m in members), config)
    if not files:
        raise LaamError(f"no files left after filters (filter={config.filter}, include={list(config.include)}, "
                        f"exclude={list(config.exclude)}) out of {len(rows)} members")
    url = archive.source_url if archive else Path(folder).resolve().as_uri()
    sha = archive.sha256 if archive else "NOASSERTION"
    return Corpus(name, config, url, sha, files, rows, skipped)


def top_directory(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:2]) + "/" if len(parts) > 2 else "(top level)"


def corpus_stats(corpus: Corpus, tokenizer=None) -> dict[str, dict[str, int]]:
    """Files, bytes, lines (and tokens, given a tokenizer) per top-level directory and in total."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    token_counts = [0] * len(corpus.files)
    if tokenizer is not None:
        from laam.tokenizer import encode_records

        token_counts = [len(ids) for ids in encode_records(tokenizer, corpus.records())]
    for f, tokens in zip(corpus.files, token_counts):
        for key in (top_directory(f.path), "total"):
            row = table[key]
            row["files"] += 1
            row["bytes"] += len(f.data)
            row["lines"] += f.data.count(b"\n")
            if tokenizer is not None:
                row["tokens"] += tokens
    return {k: dict(v) for k, v in sorted(table.items(), key=lambda kv: (kv[0] == "total", kv[0]))}
