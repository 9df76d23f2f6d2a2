"""The `.laamz` container on disk (little-endian): MAGIC, u32 header size, the header (raw-LZMA2 JSON: weight
hash, context, stride, environment, the file table with path/size/encoding/token counts, the batches with
their stream lengths), the SHA-256 of each file (32 bytes each), the payload (each batch's range-coder
stream of u32 words), and a CRC-32 of all that, so damage or truncation anywhere is caught before decoding.
"""

from __future__ import annotations

import json
import lzma
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laam.data.archive import unsafe_path
from laam.errors import LaamError
from laam.io import atomic_write_bytes

MAGIC = b"LAAMZIP\x01"
FORMAT = 1


@dataclass
class CodedFile:
    """One file of the container: what the decoder needs (path, encoding, token counts) and what it checks."""

    path: str
    size: int
    sha256: str
    encoding: str
    header_tokens: int  # <|start_file|><|start_header|>{path}<|end_header|>: given, not coded
    tokens: int  # the whole record, header included; tokens - header_tokens are coded


@dataclass
class Batch:
    files: list[int]  # indices into the file list, in the row order the model saw them
    words: int  # u32 words of its range-coder stream in the payload


@dataclass
class Container:
    header: dict
    files: list[CodedFile]
    batches: list[Batch]
    streams: list[np.ndarray]  # one u32 stream per batch


@dataclass
class ContainerSize:
    """Where an archive's bytes go: the report separates what decoding needs from the checksums."""

    total: int
    header: int  # magic, lengths, the compressed file list and model/batch facts
    checksums: int  # 32 bytes of SHA-256 per file: for --verify only, decoding does not need them
    payload: int  # the range-coder streams
    trailer: int = 4  # CRC-32 of everything before it


def _pack_header(header: dict) -> bytes:
    # raw LZMA2, without the .xz container's ≈60 bytes of framing: the file's CRC-32 guards it
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
    return lzma.compress(json.dumps(header, separators=(",", ":")).encode(), format=lzma.FORMAT_RAW, filters=filters)


def _unpack_header(packed: bytes) -> dict:
    filters = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]
    return json.loads(lzma.decompress(packed, format=lzma.FORMAT_RAW, filters=filters))


def write_container(container: Container, path: Path) -> ContainerSize:
    """Write atomically: MAGIC | u32 header size | header | SHA-256 per file | streams | u32 CRC-32."""
    files = container.files
    header = {**container.header,
              "files": {name: [getattr(f, name) for f in files]
                        for name in ("path", "size", "encoding", "header_tokens", "tokens")},
              "batches": {"files": [b.files for b in container.batches], "words": [b.words for b in container.batches]}}
    packed = _pack_header(header)
    checksums = b"".join(bytes.fromhex(f.sha256) for f in files)
    payload = b"".join(s.astype("<u4").tobytes() for s in container.streams)
    body = MAGIC + struct.pack("<I", len(packed)) + packed + checksums + payload
    atomic_write_bytes(Path(path), body + struct.pack("<I", zlib.crc32(body)))
    return ContainerSize(len(body) + 4, len(MAGIC) + 4 + len(packed), len(checksums), len(payload))


def read_container(path: Path) -> Container:
    """Parse and check a container; any damage is a one-line LaamError."""
    path = Path(path)
    if not path.is_file():
        raise LaamError(f"{path} does not exist")
    data = path.read_bytes()
    bad = f"{path} is not a LaaM compressed archive, or is corrupt or truncated"
    start = len(MAGIC) + 4
    if len(data) < start + 4 or data[:len(MAGIC)] != MAGIC:
        raise LaamError(f"{bad} (no LaaM header)")
    if zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise LaamError(f"{bad} (CRC-32 check failed)")
    (size,) = struct.unpack("<I", data[len(MAGIC):start])
    try:
        header = _unpack_header(data[start:start + size])
        table = header.pop("files")
        files = [CodedFile(path, size, "", encoding, header_tokens, tokens) for path, size, encoding, header_tokens,
                 tokens in zip(table["path"], table["size"], table["encoding"], table["header_tokens"],
                               table["tokens"], strict=True)]
        batches = [Batch(f, w) for f, w in zip(header["batches"]["files"], header.pop("batches")["words"], strict=True)]
    except (lzma.LZMAError, ValueError, TypeError, KeyError) as error:
        raise LaamError(f"{bad} (unreadable header: {error})") from error
    if header.get("format") != FORMAT:
        raise LaamError(f"{path} has container format {header.get('format')}; this laam reads format {FORMAT}")
    checksums = start + size
    payload = data[checksums + 32 * len(files):-4]
    expected = 4 * sum(b.words for b in batches)
    if len(payload) != expected:
        raise LaamError(f"{bad} ({len(payload)} bytes of coded data, its header says {expected})")
    for i, f in enumerate(files):
        f.sha256 = data[checksums + 32 * i:checksums + 32 * (i + 1)].hex()
        if not f.path or unsafe_path(f.path):
            raise LaamError(f"{path} holds an unsafe file path {f.path!r}; refusing to decode it")
    if sorted(i for b in batches for i in b.files) != list(range(len(files))):
        raise LaamError(f"{bad} (its batches do not cover its files exactly once)")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    streams, offset = [], 0
    for b in batches:
        streams.append(words[offset:offset + b.words])
        offset += b.words
    return Container(header, files, batches, streams)
