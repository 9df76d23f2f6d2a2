"""The standard compressors a model's bits per byte are compared with, on the same bytes and on the release tar."""

from __future__ import annotations

import gzip
import lzma
import time

from laam.data.archive import open_decompressed
from laam.data.corpus import resolve_source

BASELINES = {
    "gzip -9": lambda data: gzip.compress(data, compresslevel=9, mtime=0),
    "xz -9e": lambda data: lzma.compress(data, preset=9 | lzma.PRESET_EXTREME),
    "zstd -19": lambda data: _zstd(data, 19),
}


def _zstd(data: bytes, level: int) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor(level=level).compress(data)


def baselines(data: bytes) -> dict:
    """Size and bits/byte of `data` under each standard compressor."""
    out = {"bytes": len(data)}
    for name, compress in BASELINES.items():
        started = time.perf_counter()
        size = len(compress(data))
        out[name] = {"bytes": size, "bits_per_byte": 8 * size / max(len(data), 1),
                     "seconds": round(time.perf_counter() - started, 3)}
    return out


def release_tar_bytes(config) -> tuple[str, bytes] | None:
    """The corpus's release archive, uncompressed (the tar the classic figures are quoted on), or None."""
    name, archive, _ = resolve_source(config, progress=False)
    if archive is None:
        return None
    with open_decompressed(archive.path) as stream:
        return f"{name}.tar", stream.read()
