"""The training corpus: a kernel release read safely (data.archive), filtered, and wrapped as byte-exact
records (data.records), with a manifest that gives every member's size, SHA-256, encoding, license and
whether it was kept."""

from __future__ import annotations

import fnmatch
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from laam.data.archive import (
    ARCHIVE_NAME_SUFFIXES,
    CorruptArchive,
    Member,
    archive_stem,
    read_folder,
    read_tar,
    unsafe_path,
)
from laam.data.fetch import DEFAULT_MIRROR, Archive, default_cache, fetch_release, forget, local_archive, parse_version
from laam.data.licenses import copying_license, inherited_license, no_license, own_license
from laam.data.records import decode, find_marker, make_record
from laam.errors import LaamError
from laam.io import atomic_write_text
from laam.progress import counter
from laam.validation import setting, validate

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

    source: str = setting("1.0", "Kernel version (1.0, 1.2.13, 2.6.39, 6.9.4, or v1.0/1.0), a tarball path, or an "
                                 "unpacked source folder.")
    mirror: str = setting(DEFAULT_MIRROR, "kernel.org-style mirror: an http(s) URL or a local folder laid out like "
                                          "pub/linux/kernel/.")
    cache: Path | None = setting(None, "Where archives, manifests and tokenizers are cached.")
    filter: str = setting("source", f"File selection: {' or '.join(FILTERS)}. 'source' keeps every text file (code, "
                                    "Makefiles, config scripts, READMEs: what GPL-2.0 calls complete source); "
                                    "'original' keeps the original LaaM's extensions (.c .h .s .txt …).")
    include: tuple[str, ...] = setting((), "Keep only paths matching this glob (repeatable; `*` crosses `/`; a "
                                           "trailing `/` means the whole folder), written from the kernel's root "
                                           "whatever the archive's top folder, e.g. 'kernel/', 'lib/lzo/' (the older "
                                           "'linux/kernel/' works too).")
    exclude: tuple[str, ...] = setting((), "Drop paths matching this glob (repeatable; written like --include, e.g. "
                                           "'lib/malloc.c').")
    max_file_size: int = setting(DEFAULT_MAX_FILE_SIZE, "Drop files larger than this many bytes.")

    def __post_init__(self):  # every command builds one of these, so every command refuses the same values
        validate(self, "corpus")
        if self.filter not in FILTERS:
            raise LaamError(f"unknown filter {self.filter!r}: use one of {', '.join(FILTERS)}")
        if not isinstance(self.max_file_size, int) or self.max_file_size < 1:
            raise LaamError(f"--max-file-size must be a positive number of bytes, got {self.max_file_size!r}")

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
class CorpusFile:
    path: str
    data: bytes
    encoding: str  # "utf-8" or "latin-1"
    license: str  # a normalized SPDX expression, or NOASSERTION
    sha256: str = ""  # of `data`; filled by select(), computed on demand otherwise

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

    def records(self) -> Iterator[str]:
        """Each file's record, one at a time: a whole modern tree's records would hold its text a second time."""
        return (f.record for f in self.files)

    @property
    def root(self) -> str:
        """The archive's top folder (`linux`, `linux-6.12`), that --include/--exclude/--files patterns are
        relative to; "" when the files share none."""
        return tree_root(f.path for f in self.files)

    def fingerprint(self) -> str:
        """Hash of the exact records (paths and bytes, in path order), to key caches of anything derived from
        them: a tarball and the unpacked folder of the same release give the same fingerprint."""
        digest = hashlib.sha256()
        for f in self.files:
            file_digest = bytes.fromhex(f.sha256) if f.sha256 else hashlib.sha256(f.data).digest()
            digest.update(f.path.encode() + b"\0" + file_digest)
        return digest.hexdigest()[:16]

    def license_methods(self) -> dict[str, int]:
        """How the kept files' licenses were found: spdx-tag, notice, copying, none (and how many tags were invalid)."""
        kept = [row for row in self.manifest if row["included"]]
        counts = defaultdict(int)
        for row in kept:
            counts[row["license_method"] + (" (invalid)" if row.get("license_error") else "")] += 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def source_key(self) -> str:
        """A short hash of the bytes the corpus was read from: the archive's SHA-256, or for an unpacked folder
        a hash of every member's path and SHA-256. Two different sources never share a cache folder."""
        if len(self.source_sha256) == 64:
            return self.source_sha256[:12]
        members = json.dumps([[row["path"], row["sha256"]] for row in self.manifest]).encode()
        return "dir" + hashlib.sha256(members).hexdigest()[:9]

    def folder(self) -> Path:
        """Its cache folder (manifest, tokenizers), keyed by source content and selection."""
        key = f"{self.name}-{self.source_key()}-{self.config.selection_key()}"
        return Path(self.config.cache or default_cache()) / "corpus" / key

    def write_manifest(self, folder: Path | None = None) -> Path:
        """`manifest.jsonl` (one row per archive member) and `corpus.json` (source, filter, totals)."""
        folder = Path(folder or self.folder())
        atomic_write_text(folder / "manifest.jsonl", "".join(json.dumps(row) + "\n" for row in self.manifest))
        summary = {
            "name": self.name, "source_url": self.source_url, "source_sha256": self.source_sha256,
            "selection": {k: v for k, v in asdict(self.config).items() if k not in ("cache", "mirror", "source")},
            "members": self.members, "included": len(self.files),
            "bytes": sum(len(f.data) for f in self.files), "fingerprint": self.fingerprint(),
            "licenses": license_counts(self.files), "license_methods": self.license_methods(),
            "skipped_unsafe": self.skipped,
        }
        atomic_write_text(folder / "corpus.json", json.dumps(summary, indent=1) + "\n")
        return folder


def license_counts(files: list[CorpusFile]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for f in files:
        counts[f.license] += 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _kept_by_filter(path: str, data: bytes, config: CorpusConfig) -> str | None:
    """None when a file is kept, else why it is not."""
    if config.filter == "original" and not path.lower().endswith(ORIGINAL_EXTENSIONS):
        return "not a source extension of the original LaaM filter"
    if config.filter == "source" and data is not None and b"\0" in data[:8192]:
        return "binary (NUL byte)"
    if data is None or len(data) > config.max_file_size:  # None: skipped from its header, never read
        return f"larger than max file size ({config.max_file_size} bytes)"
    if config.include and not any(glob_match(path, g) for g in config.include):
        return "not matched by --include"
    if any(glob_match(path, g) for g in config.exclude):
        return "matched by --exclude"
    return None


# Presets and READMEs before root-relative patterns wrote `linux/lib/`: Linux 1.0's top folder.
LEGACY_ROOT = "linux"


def tree_root(paths: Iterable[str]) -> str:
    """The top folder every path lies under (`linux`, `linux-6.12`, `linux-source-6.12`), or "" if none."""
    root = None
    for path in paths:
        top, slash, _ = path.partition("/")
        if not slash or (root is not None and top != root):
            return ""
        root = top
    return root or ""


def relative_to_root(path: str, root: str) -> str:
    """`linux-6.12/lib/string.c` -> `lib/string.c`: a path as written relative to the kernel's root."""
    return path[len(root) + 1:] if root and path.startswith(root + "/") else path


def glob_match(path: str, pattern: str) -> bool:
    """Whether an archive path matches a pattern written relative to the kernel's root (`lib/`, `lib/*.c`),
    whatever the archive's top folder; the pattern may also name the top folder (`linux-6.12/lib/`) or Linux
    1.0's (`linux/lib/`, the spelling older recipes use). fnmatch, where `*` also crosses `/`, and a pattern
    ending in `/` means everything under it. Needs no other path, so members can be filtered as they stream."""
    if pattern.endswith("/"):
        pattern += "*"
    if fnmatch.fnmatchcase(path, pattern):
        return True
    top, slash, below = path.partition("/")
    if not slash:
        return False
    for prefix in (f"{top}/", f"{LEGACY_ROOT}/"):
        if pattern.startswith(prefix):
            pattern = pattern[len(prefix):]
            break
    return fnmatch.fnmatchcase(below, pattern)


def select_files(files: list[CorpusFile], globs: list[str] | tuple[str, ...] | None,
                 option: str = "--files") -> list[CorpusFile]:
    """The files whose path matches any of `globs` (all of them when none is given); none matching is an error."""
    if not globs:
        return list(files)
    chosen = [f for f in files if any(glob_match(f.path, g) for g in globs)]
    if not chosen:
        root = tree_root(f.path for f in files)
        example = (f" (paths look like {relative_to_root(files[0].path, root)}, relative to the tree's top folder "
                   f"{root}/)" if root else f" (paths look like {files[0].path})") if files else ""
        raise LaamError(f"{option} {' '.join(globs)} matches none of the corpus's {len(files)} files{example}")
    return chosen


def _row(path: str, reason: str, size: int | None = None) -> dict:
    return {"path": path, "size": size, "sha256": None, "encoding": None, "included": False, "reason": reason,
            **no_license()}


def printable_path(path: str) -> str:
    """A member name as text: bytes that are not UTF-8 (kept by tarfile/os as surrogates) shown as \\xNN."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def select(members: Iterator[Member], config: CorpusConfig) -> tuple[list[CorpusFile], list[dict], list]:
    """Apply safety checks and filters: (kept files, manifest rows, skipped members with why), all in path order,
    so a tarball and its unpacked folder give the same corpus. Members stream through: only kept files' bytes
    stay in memory (a 5-file subset of a modern tree does not hold the other 86,000)."""
    if config.filter not in FILTERS:
        raise LaamError(f"unknown filter {config.filter!r}: use one of {', '.join(FILTERS)}")
    rows, kept, skipped, copying, own = [], [], [], {}, {}
    for member in members:
        if member.kind == "dir":
            continue
        why = None
        if printable_path(member.path) != member.path:
            why = "file name is not valid UTF-8 (shown with \\x escapes)"
        elif unsafe_path(member.path):
            why = "unsafe path (absolute or ..)"
        elif member.kind != "file":
            why = f"{member.kind}, not a regular file"
        if why:
            skipped.append((printable_path(member.path), why))
            rows.append(_row(printable_path(member.path), why))
            continue
        path, data = member.path, member.data
        reason = _kept_by_filter(path, data, config)
        if data is None:  # over the size limit: known from its header, never read
            rows.append(_row(path, reason, member.size))
            continue
        own[path] = own_license(path, data)
        if path.rsplit("/", 1)[-1] == "COPYING":
            copying[path.rsplit("/", 1)[0] if "/" in path else ""] = copying_license(data)
        text, encoding = decode(data)
        marker = find_marker(path) or find_marker(text) if reason is None else None
        if marker:
            reason = f"contains the record marker {marker} (it would end or split the record)"
            skipped.append((path, reason))
        sha256 = hashlib.sha256(data).hexdigest()
        rows.append({"path": path, "size": len(data), "sha256": sha256, "encoding": encoding,
                     "included": reason is None, "reason": reason or "kept"})
        if reason is None:
            kept.append((path, data, encoding, sha256))
    for row in rows:  # a COPYING may come after the files it covers: inherited licenses are read last
        if row["sha256"] is not None:
            row.update((own[row["path"]] or inherited_license(row["path"], copying)).manifest_fields())
    licenses = {row["path"]: row["license"] for row in rows}
    files = [CorpusFile(path, data, encoding, licenses[path], sha256) for path, data, encoding, sha256 in kept]
    files.sort(key=lambda f: f.path)
    rows.sort(key=lambda row: row["path"])
    skipped.sort()
    return files, rows, skipped


def _looks_like_path(text: str) -> bool:
    """A source that is not a kernel version but names a file or folder (so a missing one is "no such file")."""
    try:
        parse_version(text)
        return False
    except LaamError:
        return "/" in text or "\\" in text or text.startswith((".", "~")) or text.endswith(ARCHIVE_NAME_SUFFIXES)


def resolve_source(config: CorpusConfig, progress: bool = True) -> tuple[str, Archive | None, Path | None]:
    """(corpus name, archive or None, unpacked folder or None) for a version, tarball or folder."""
    text = config.source.strip()
    if not text:
        raise LaamError("no source given: name a kernel version (e.g. 1.0), a tarball or an unpacked source folder")
    candidate = Path(text).expanduser()
    if candidate.is_dir():
        return candidate.resolve().name, None, candidate
    if candidate.is_file():
        return archive_stem(candidate.name), local_archive(candidate), None
    if candidate.exists():
        raise LaamError(f"{text} is neither a file nor a folder")
    if _looks_like_path(text):
        raise LaamError(f"no such file or folder: {text}")
    archive = fetch_release(text, config.mirror, config.cache, progress=progress)
    return archive_stem(archive.path.name), archive, None


def read_members(config: CorpusConfig, progress: bool = True) -> tuple[str, Archive | None, Path | None, tuple]:
    """Resolve the source and read it through `select`: (name, archive, folder, (files, rows, skipped)).

    The archive is verified end to end as it is read; a damaged archive from laam's cache is removed from it
    (so the next run fetches it again) and reported."""
    name, archive, folder = resolve_source(config, progress)
    members = read_tar(archive.path, config.max_file_size) if archive else read_folder(folder, config.max_file_size)
    try:
        with counter(progress, "members") as bar:
            task = bar.add_task(f"reading {name}")
            selected = select((bar.advance(task) or m for m in members), config)
    except CorruptArchive as error:
        if archive is None or not archive.cached:
            raise
        forget(archive)
        raise LaamError(f"{error}; removed it from the cache, run again to fetch it afresh") from error
    return name, archive, folder, selected


def load_corpus(config: CorpusConfig, progress: bool = True) -> Corpus:
    """Fetch if needed, read safely, filter: the corpus every later stage trains and audits on."""
    name, archive, folder, (files, rows, skipped) = read_members(config, progress)
    if not files:
        raise LaamError(f"no files left after filters (filter={config.filter}, include={list(config.include)}, "
                        f"exclude={list(config.exclude)}) out of {len(rows)} members")
    url = archive.source_url if archive else Path(folder).resolve().as_uri()
    sha = archive.sha256 if archive else "NOASSERTION"
    return Corpus(name, config, url, sha, files, rows, skipped)


def top_directory(path: str) -> str:
    parts = path.split("/")
    return "/".join(parts[:2]) + "/" if len(parts) > 2 else "(top level)"


def corpus_stats(corpus: Corpus, token_counts: list[int] | None = None) -> dict[str, dict[str, int]]:
    """Files, bytes, lines (and tokens, given each record's token count) per top-level directory and in total."""
    table: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for i, f in enumerate(corpus.files):
        for key in (top_directory(f.path), "total"):
            row = table[key]
            row["files"] += 1
            row["bytes"] += len(f.data)
            row["lines"] += f.data.count(b"\n")
            if token_counts is not None:
                row["tokens"] += token_counts[i]
    return {k: dict(v) for k, v in sorted(table.items(), key=lambda kv: (kv[0] == "total", kv[0]))}
