"""Training data: every record tokenized once into a cached memmap, cut into laam.windows windows.

The cache (ids.bin: uint16/uint32 token ids of all records back to back; index.json: per record
its path, offset, length and first body token) is keyed by the corpus fingerprint and a hash of
the tokenizer, so a changed corpus or tokenizer never reuses stale ids.

Windows follow laam/windows.py exactly: window k of a record reads tokens [start, end-1) and is
scored only on targets [first_target, end), each predicted from exactly the tokens that greedy
generation with the same context/stride will have seen. Short windows are right-padded; padding
sits after every real token, so under the causal mask it changes no real prediction, and its
labels are -100 (nothing to learn there). No attention mask is needed, which keeps SDPA on its
fast causal path.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from laam.tokenizer import encode_records, special_ids
from laam.windows import windows

IGNORE = -100


def tokenizer_hash(tokenizer_dir: Path) -> str:
    return hashlib.sha256((Path(tokenizer_dir) / "tokenizer.json").read_bytes()).hexdigest()[:16]


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


def build_token_cache(corpus, tokenizer, tokenizer_dir: Path, cache_root: Path) -> TokenCache:
    """Tokenize `corpus` with `tokenizer` once; later calls with the same corpus and tokenizer reuse the files."""
    key = f"{corpus.fingerprint()[:16]}-{tokenizer_hash(tokenizer_dir)}"
    folder = Path(cache_root) / "tokens" / key
    if not (folder / "index.json").is_file():
        ids = encode_records(tokenizer, corpus.records())
        end_header = special_ids(tokenizer)["<|end_header|>"]
        dtype = np.uint16 if len(tokenizer) <= 1 << 16 else np.uint32
        flat = np.fromiter((t for r in ids for t in r), dtype=dtype, count=sum(map(len, ids)))
        lengths = [len(r) for r in ids]
        index = {"dtype": np.dtype(dtype).name, "paths": [f.path for f in corpus.files], "lengths": lengths,
                 "body_starts": [r.index(end_header) + 1 for r in ids], "vocab_size": len(tokenizer)}
        folder.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{key}-"))
        flat.tofile(scratch / "ids.bin")
        (scratch / "index.json").write_text(json.dumps(index))
        try:
            os.rename(scratch, folder)  # atomic: a half-written cache is never seen
        except OSError:  # another process built it first
            pass
    return load_token_cache(folder)


def load_token_cache(folder: Path) -> TokenCache:
    index = json.loads((Path(folder) / "index.json").read_text())
    lengths = np.asarray(index["lengths"], dtype=np.int64)
    ids = np.memmap(Path(folder) / "ids.bin", dtype=index["dtype"], mode="r", shape=(int(lengths.sum()),))
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    return TokenCache(Path(folder), ids, index["paths"], offsets, lengths,
                      np.asarray(index["body_starts"], dtype=np.int64))


class WindowSet:
    """Every training window of every record: rows of (record, start, end, first_target)."""

    def __init__(self, cache: TokenCache, context: int, stride: int):
        self.cache, self.context, self.stride = cache, context, stride
        rows = [(r, s, e, f) for r in range(len(cache.lengths))
                for s, e, f in windows(int(cache.lengths[r]), context, stride)]
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1, 4)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def targets(self) -> int:
        """Tokens scored per epoch: every token but each record's first."""
        return int((self.cache.lengths - 1).sum())

    def batch(self, indices, pad_id: int) -> dict[str, torch.Tensor]:
        """input_ids [B, T], labels [B, T] (-100 where nothing is scored), body [B, T] (targets after the header).

        T is the longest window in the batch (at most `context`), so a corpus of short files does not pay for
        a full context of padding.
        """
        rows = self.rows[np.asarray(indices)]
        width = int((rows[:, 2] - rows[:, 1] - 1).max())
        inputs = np.full((len(rows), width), pad_id, dtype=np.int64)
        labels = np.full((len(rows), width), IGNORE, dtype=np.int64)
        body = np.zeros((len(rows), width), dtype=bool)
        for i, (record, start, end, first) in enumerate(rows):
            tokens = self.cache.record(record)[start:end].astype(np.int64)
            n = len(tokens) - 1
            inputs[i, :n] = tokens[:-1]
            positions = np.arange(start + 1, end)  # position of each target in its record
            scored = positions >= first
            labels[i, :n] = np.where(scored, tokens[1:], IGNORE)
            body[i, :n] = scored & (positions >= self.cache.body_starts[record])
        return {"input_ids": torch.from_numpy(inputs), "labels": torch.from_numpy(labels),
                "body": torch.from_numpy(body)}


def epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    """The shuffled window order of one epoch: a pure function of (seed, epoch), so resuming needs only the
    epoch and the position within it."""
    return np.random.default_rng([seed, epoch]).permutation(n)
