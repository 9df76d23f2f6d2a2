"""The token cache: every record tokenized once into a memmap that training and checks read.

The cache (ids.bin: uint16/uint32 token ids of all records back to back; index.json: per record
its path, offset, length and first body token) is keyed by the corpus fingerprint and the
SHA-256 of tokenizer.json and tokenizer_config.json, so a changed corpus or tokenizer never reuses
stale ids. It is where every tokenizer enters a run (`laam train`, `laam run`, `--tokenizer DIR`):
each record's round trip is checked while the cache is built, and a tokenizer that fails leaves none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laam.data.records import END_HEADER
from laam.data.tokenizer import RoundTrip, iter_token_ids, special_ids, tokenizer_sha256
from laam.io import atomic_folder, sha256_file


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
    if not (folder / "index.json").is_file():
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
    return load_token_cache(folder)


def load_token_cache(folder: Path) -> TokenCache:
    index = json.loads((Path(folder) / "index.json").read_text())
    lengths = np.asarray(index["lengths"], dtype=np.int64)
    ids = np.memmap(Path(folder) / "ids.bin", dtype=index["dtype"], mode="r", shape=(int(lengths.sum()),))
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return TokenCache(Path(folder), ids, index["paths"], offsets, lengths,
                      np.asarray(index["body_starts"], dtype=np.int64))
