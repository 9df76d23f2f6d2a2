"""The token cache: every record tokenized once into a memmap that training and checks read.

The cache (ids.bin: uint16/uint32 token ids of all records back to back; index.json: per record
its path, offset, length and first body token) is keyed by the corpus fingerprint and the
SHA-256 of tokenizer.json and tokenizer_config.json, so a changed corpus or tokenizer never reuses
stale ids. Its checksums.json, written last, seals it: an entry whose files differ from it (a changed id, a
cut file) or that has none is rebuilt with a one-line note. It is where every tokenizer enters a run
(`laam train`, `laam run`, `--tokenizer DIR`): each record's round trip is checked while the cache is built,
and a tokenizer that fails leaves none. `untrue_records` compares a cache with the corpus's real bytes, for
the claims made at the end of training (train.loop).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laam.data.records import END_HEADER, generated_bytes, make_record, split_record
from laam.data.tokenizer import RoundTrip, backend, iter_token_ids, special_ids, tokenizer_sha256
from laam.errors import LaamError
from laam.io import atomic_folder, discard_damaged, seal, seal_fault, sha256_file

FILES = ["ids.bin", "index.json"]


@dataclass
class TokenCache:
    """All records' token ids (a read-only memmap) and, per record, where it lies and where its body starts."""

    folder: Path
    ids: np.ndarray
    paths: list[str]
    offsets: np.ndarray
    lengths: np.ndarray
    body_starts: np.ndarray  # index of the first token after <|end_header|>, within the record

    @property
    def total_tokens(self) -> int:
        return int(self.lengths.sum())

    def record(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i] + self.lengths[i]]


def build_token_cache(corpus, tokenizer, tokenizer_dir: Path, cache_root: Path, progress: bool = False) -> TokenCache:
    """Tokenize `corpus` with `tokenizer` once; later calls with the same corpus and tokenizer reuse the files.

    Records are encoded in bounded batches and their ids appended to ids.bin as they come, so memory does not
    grow with the corpus (a whole modern kernel is ~400M tokens)."""
    config = Path(tokenizer_dir) / "tokenizer_config.json"  # its clean-up flag changes stock decoding
    key = f"{corpus.fingerprint()[:16]}-{tokenizer_sha256(tokenizer_dir)[:16]}" + (
        f"-{sha256_file(config)[:8]}" if config.is_file() else "")
    folder = Path(cache_root) / "tokens" / key
    if folder.exists() and (fault := seal_fault(folder)):
        discard_damaged(folder, "token cache", fault)
    if not folder.exists():
        end_header = special_ids(tokenizer)[END_HEADER]
        dtype = np.uint16 if len(tokenizer) <= 1 << 16 else np.uint32
        lengths, body_starts = [], []
        trip = RoundTrip(tokenizer)
        with atomic_folder(folder, replace=False) as scratch:  # another process may have built it first
            with open(scratch / "ids.bin", "wb") as out:
                for f, record, ids in zip(corpus.files, corpus.records(), iter_token_ids(
                        tokenizer, corpus.records(), progress=progress, total=len(corpus.files), what="token cache")):
                    trip.check(f.path, record, ids)
                    np.asarray(ids, dtype=dtype).tofile(out)
                    lengths.append(len(ids))
                    body_starts.append(ids.index(end_header) + 1)
            trip.raise_if_failed(f"the tokenizer in {tokenizer_dir}")  # no cache of ids that do not decode back
            index = {"dtype": np.dtype(dtype).name, "paths": [f.path for f in corpus.files], "lengths": lengths,
                     "body_starts": body_starts, "vocab_size": len(tokenizer)}
            (scratch / "index.json").write_text(json.dumps(index))
            seal(scratch, FILES)
    return load_token_cache(folder)


def load_token_cache(folder: Path) -> TokenCache:
    """A sealed cache entry's memmap and index; one whose files do not fit together is one line naming it."""
    try:
        index = json.loads((Path(folder) / "index.json").read_text())
        lengths = np.asarray(index["lengths"], dtype=np.int64)
        ids = np.memmap(Path(folder) / "ids.bin", dtype=index["dtype"], mode="r", shape=(int(lengths.sum()),))
        offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        cache = TokenCache(Path(folder), ids, index["paths"], offsets, lengths,
                           np.asarray(index["body_starts"], dtype=np.int64))
        if not (len(cache.paths) == len(lengths) == len(cache.body_starts)):
            raise ValueError("index.json's lists differ in length")
    except (OSError, ValueError, TypeError, KeyError) as error:
        raise LaamError(f"token cache {folder} is unreadable ({' '.join(str(error).split())}); delete it to "
                        "rebuild it") from error
    return cache


def untrue_records(cache: TokenCache, corpus, tokenizer) -> dict[str, int]:
    """The records of `cache` whose token ids do not give the corpus file back, byte for byte: path -> the
    position of its first token that differs from the true record's tokens. A file is true when its record's
    ids decode to its own path and to bytes with the SHA-256 the manifest records (what the archive held), so
    a model trained or checked on these ids is measured against the real files, not against the cache."""
    files = {f.path: f for f in corpus.files}
    tok = backend(tokenizer)
    untrue = {}
    if cache.paths != [f.path for f in corpus.files]:
        return {path: 0 for path in files}
    for first in range(0, len(cache.paths), 256):  # decoded in batches, in parallel in Rust
        numbers = range(first, min(first + 256, len(cache.paths)))
        batch = [cache.record(i).tolist() for i in numbers]
        for i, ids, text in zip(numbers, batch, tok.decode_batch(batch, skip_special_tokens=False)):
            path, file = cache.paths[i], files[cache.paths[i]]
            try:
                got_path, content = split_record(text)
            except ValueError:
                got_path, content = None, ""
            truth = file.sha256 or hashlib.sha256(file.data).hexdigest()
            if got_path == path and hashlib.sha256(generated_bytes(content, file.encoding)).hexdigest() == truth:
                continue
            true_ids = tok.encode(make_record(file.path, file.text), add_special_tokens=False).ids
            untrue[path] = next((j for j, (a, b) in enumerate(zip(ids, true_ids)) if a != b),
                                min(len(ids), len(true_ids)))
    return untrue
