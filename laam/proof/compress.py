"""The model as a compressor: arithmetic-code every corpus file under the model's next-token probabilities.

A file costs -log2 p(token | what the model sees) bits per token, so a model that memorized the
corpus needs almost nothing beyond its weights to give back every byte: a proof of memorization
that depends on no sampling setting and no prompt. Each file's header
(`<|start_file|><|start_header|>{path}<|end_header|>`) is the context, stored as its path; the body
tokens and the closing `<|end_file|>` are coded.

Coder: `constriction`'s range coder (`stream.queue.RangeEncoder`), not its ANS coder. ANS is a
stack: it codes symbols in reverse, so the encoder would have to hold every position's full
probability table (tokens x vocabulary floats: 2M x 32768 for Linux 1.0) before writing the first
bit. The range coder is a queue, so both sides code each step's probabilities as soon as the model
produces them, in the order the decoder needs them, for a few bytes more per stream.

Encoder and decoder must quantize bit-identical probabilities, or decoding derails. The decoder can
only go token by token, so the encoder runs the very same computation: files are coded in batches
(the batch composition is stored), all files of a batch step through positions in lockstep with a KV
cache, and when the window slides (laam.windows: drop `stride` tokens, re-read the rest) both sides
re-prefill the same [batch, window] block. Every model call thus has the same inputs and shapes on
both sides. Files shorter than the batch's longest one are padded on the right with `<|pad|>` (the
causal mask keeps padding out of earlier positions, and both sides pad identically). Probabilities
are a float32 softmax turned into 24-bit fixed-point integers by constriction's
`Categorical(perfect=False)` family, which is deterministic given identical floats and gives every
token at least the smallest nonzero probability, so any token can be coded.

The float computation is only reproducible on the same software and kind of device: the container
records torch/transformers versions, device and thread count, and decompression warns when they
differ. The per-file SHA-256 (`--verify`) catches any drift.

Container (`.laamz`, little-endian): MAGIC, u32 header size, the header (LZMA2-compressed JSON: weight
hash, context, stride, environment, the file table with path/size/encoding/token counts, the batches
with their stream lengths), the SHA-256 of each file (32 bytes each, only for --verify), the payload
(each batch's range-coder stream of u32 words), and a CRC-32 of all that, so damage or truncation
anywhere is caught before decoding.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import lzma
import os
import struct
import time
import warnings
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laam import LaamError, __version__
from laam.corpus import (
    END_FILE,
    PAD,
    CorpusFile,
    _glob_match,
    _unsafe,
    file_bytes,
    load_corpus,
    path_prompt,
    resolve_source,
)
from laam.modelinfo import read_model_info
from laam.tokenizer import decode_ids, encode_records, load_tokenizer, special_ids

MAGIC = b"LAAMZIP\x01"
FORMAT = 1
REPORT_FORMAT = "laam-compression/1"
REPORT_FILE = "compression.json"  # `laam compress --out MODEL/NAME.laamz` writes it into the model folder


@dataclass
class CompressConfig:
    """How to run the model while coding (the decoder follows the batches stored in the container)."""

    batch_size: int = 16  # files stepped together: larger is faster until the device is busy
    device: str = "auto"  # auto = cuda when available, else cpu


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
class CodingStats:
    files: int = 0
    bytes: int = 0
    coded_tokens: int = 0
    ideal_bits: float = 0.0  # sum of -log2 p(token) under the float probabilities
    seconds: float = 0.0

    @property
    def bytes_per_second(self) -> float:
        return self.bytes / self.seconds if self.seconds else 0.0


# --- the model, stepped exactly alike on both sides --------------------------------------------

@dataclass
class LoadedModel:
    folder: Path
    model: object
    tokenizer: object
    context: int
    stride: int
    device: str
    weights_sha256: str
    weights_bytes: int
    tokenizer_sha256: str
    pad_id: int
    end_file_id: int


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LaamError(f"device {device} asked for, but torch sees no CUDA device")
    return device


def weight_files(folder: Path) -> list[Path]:
    files = sorted(Path(folder).glob("*.safetensors")) or sorted(Path(folder).glob("pytorch_model*.bin"))
    if not files:
        raise LaamError(f"no model weights (*.safetensors) in {folder}")
    return files


def weights_fingerprint(folder: Path) -> tuple[str, int]:
    """SHA-256 over the weight files and their total size: the decoder must run the very same weights."""
    digest, size = hashlib.sha256(), 0
    for path in weight_files(folder):
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
    return digest.hexdigest(), size


def load_model(folder: Path, device: str = "auto", quiet: bool = False) -> LoadedModel:
    """The model folder's weights as laam.generate loads them (float32, eval, the attention for its head size)
    on `device`, with its window policy and the fingerprints an archive records."""
    import transformers

    from laam import generate

    if quiet:
        transformers.utils.logging.disable_progress_bar()
    info = read_model_info(folder)
    device = resolve_device(device)
    tokenizer = load_tokenizer(folder)
    model = generate.load_model(folder, device=device)
    ids = special_ids(tokenizer)
    sha, size = weights_fingerprint(folder)
    tokenizer_sha = hashlib.sha256((Path(folder) / "tokenizer.json").read_bytes()).hexdigest()
    return LoadedModel(Path(folder), model, tokenizer, info.context, info.stride, device, sha, size, tokenizer_sha,
                       ids[PAD], ids[END_FILE])


@contextlib.contextmanager
def deterministic():
    """Deterministic kernels for the duration (CUDA needs the cuBLAS workspace setting)."""
    import torch

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous, previous_warn = torch.are_deterministic_algorithms_enabled(), \
        torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with torch.inference_mode():
            yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def step_batch(loaded: LoadedModel, tokens, header_tokens: list[int], lengths: list[int],
               code: Callable[[int, np.ndarray, np.ndarray], np.ndarray], advance: Callable[[int], None]) -> None:
    """One batch through laam.generate.step_in_lockstep under the model's window policy (see there)."""
    from laam.generate import step_in_lockstep

    step_in_lockstep(loaded.model, tokens, header_tokens, lengths, loaded.context, loaded.stride, code, advance)


def plan_batches(token_counts: list[int], batch_size: int) -> list[list[int]]:
    """Files grouped by similar length (longest first), so lockstep batches waste few padded steps."""
    if batch_size < 1:
        raise LaamError(f"batch size must be at least 1, got {batch_size}")
    order = sorted(range(len(token_counts)), key=lambda i: (-token_counts[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def _progress(quiet: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("tokens"),
                    TimeElapsedColumn(), TimeRemainingColumn(), disable=quiet, transient=True)


# --- compress -----------------------------------------------------------------------------------

def select_files(files: list[CorpusFile], globs: list[str] | None) -> list[CorpusFile]:
    if not globs:
        return list(files)
    chosen = [f for f in files if any(_glob_match(f.path, g) for g in globs)]
    if not chosen:
        raise LaamError(f"--files {' '.join(globs)} matches none of the corpus's {len(files)} files")
    return chosen


def tokenize_files(loaded: LoadedModel, files: list[CorpusFile]) -> list[list[int]]:
    """Record ids per file; checks what decoding relies on (header prefix, exact round trip, fits the model)."""
    records = [f.record for f in files]
    ids = encode_records(loaded.tokenizer, records)
    headers = encode_records(loaded.tokenizer, [path_prompt(f.path) for f in files])
    vocab = loaded.model.config.vocab_size
    for f, record, record_ids, header in zip(files, records, ids, headers):
        if record_ids[:len(header)] != header:
            raise LaamError(f"{f.path}: its record does not start with the tokens of its header")
        if decode_ids(loaded.tokenizer, record_ids) != record:
            raise LaamError(f"{f.path}: the tokenizer does not round-trip this file, so it cannot be coded exactly")
        if max(record_ids) >= vocab:
            raise LaamError(f"{f.path}: token id {max(record_ids)} is outside the model's vocabulary ({vocab})")
    return ids


def compress_files(loaded: LoadedModel, files: list[CorpusFile], config: CompressConfig,
                   quiet: bool = True) -> tuple[Container, CodingStats]:
    """Code `files` under the model: the container (not yet written) and coding statistics."""
    import constriction
    import torch

    if not files:
        raise LaamError("no files to compress")
    started = time.perf_counter()
    ids = tokenize_files(loaded, files)
    headers = [len(encode_records(loaded.tokenizer, [path_prompt(f.path)])[0]) for f in files]
    coded = [CodedFile(f.path, len(f.data), hashlib.sha256(f.data).hexdigest(), f.encoding, h, len(i))
             for f, h, i in zip(files, headers, ids)]
    family = constriction.stream.model.Categorical(perfect=False)
    stats = CodingStats(files=len(files), bytes=sum(len(f.data) for f in files),
                        coded_tokens=sum(c.tokens - c.header_tokens for c in coded))
    batches, streams = [], []
    with _progress(quiet) as bar, deterministic():
        task = bar.add_task("compress", total=stats.coded_tokens)
        for members in plan_batches([c.tokens for c in coded], config.batch_size):
            tokens = torch.full((len(members), max(coded[i].tokens for i in members)), loaded.pad_id,
                                dtype=torch.long)
            for row, i in enumerate(members):
                tokens[row, :coded[i].tokens] = torch.tensor(ids[i])
            known = tokens.numpy().astype(np.int32)
            encoder = constriction.stream.queue.RangeEncoder()

            def code(p, rows, probs, known=known, encoder=encoder):
                symbols = known[rows, p]
                encoder.encode(symbols, family, probs)
                stats.ideal_bits += float(-np.log2(np.maximum(probs[np.arange(len(rows)), symbols], 1e-45)).sum())
                return symbols

            step_batch(loaded, tokens, [coded[i].header_tokens for i in members], [coded[i].tokens for i in members],
                       code, lambda n, task=task: bar.update(task, advance=n))
            stream = encoder.get_compressed()
            streams.append(stream)
            batches.append(Batch(members, int(stream.size)))
    stats.seconds = time.perf_counter() - started
    header = {"format": FORMAT, "laam": __version__,
              "model": {"weights_sha256": loaded.weights_sha256, "weights_bytes": loaded.weights_bytes,
                        "tokenizer_sha256": loaded.tokenizer_sha256,
                        "context": loaded.context, "stride": loaded.stride,
                        "vocab_size": loaded.model.config.vocab_size},
              "batch_size": config.batch_size, "environment": environment(loaded)}
    return Container(header, coded, batches, streams), stats


def environment(loaded: LoadedModel) -> dict:
    """What the probabilities depend on besides the weights: software, device, threads, attention kernel."""
    import constriction
    import torch
    import transformers

    device = loaded.device
    env = {"torch": torch.__version__, "transformers": transformers.__version__,
           "constriction": getattr(constriction, "__version__", None) or _package_version("constriction"),
           "device": device, "threads": torch.get_num_threads(),
           "attention": loaded.model.config._attn_implementation}
    if device.startswith("cuda"):
        env["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return env


def _package_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


# --- the container on disk ----------------------------------------------------------------------

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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.with_name(path.name + ".part")
    scratch.write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    os.replace(scratch, path)
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
        if not f.path or _unsafe(f.path):
            raise LaamError(f"{path} holds an unsafe file path {f.path!r}; refusing to decode it")
    if sorted(i for b in batches for i in b.files) != list(range(len(files))):
        raise LaamError(f"{bad} (its batches do not cover its files exactly once)")
    words = np.frombuffer(payload, dtype="<u4").astype(np.uint32)
    streams, offset = [], 0
    for b in batches:
        streams.append(words[offset:offset + b.words])
        offset += b.words
    return Container(header, files, batches, streams)


# --- decompress ---------------------------------------------------------------------------------

@dataclass
class DecodedFile:
    path: str
    data: bytes
    ok: bool  # size matches, and sha256 too when verified
    problem: str | None = None


def check_model(container: Container, loaded: LoadedModel) -> list[str]:
    """Refuse another model or tokenizer; return how the software/device differ from the encoder's (may derail)."""
    model = container.header["model"]
    if model["weights_sha256"] != loaded.weights_sha256:
        raise LaamError(f"this archive was compressed with other weights (sha256 {model['weights_sha256'][:12]}…) "
                        f"than {loaded.folder} ({loaded.weights_sha256[:12]}…); decode it with that model")
    if model.get("tokenizer_sha256") != loaded.tokenizer_sha256:
        raise LaamError(f"this archive was compressed with another tokenizer than the one in {loaded.folder}")
    if (model["context"], model["stride"]) != (loaded.context, loaded.stride):
        raise LaamError(f"archive coded with context {model['context']}/stride {model['stride']}, model folder says "
                        f"{loaded.context}/{loaded.stride}")
    was, now = container.header.get("environment", {}), environment(loaded)
    keys = ["torch", "transformers", "device", "device_name", "attention"]
    keys += ["threads"] if now["device"] == "cpu" else []
    return [f"{k} {was.get(k)} -> {now.get(k)}" for k in keys if was.get(k) != now.get(k)]


def _warn(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def decompress_container(loaded: LoadedModel, container: Container, verify: bool = True, quiet: bool = True,
                         warn: Callable[[str], None] = _warn) -> Iterator[DecodedFile]:
    """Decode every file (in batch order), yielding each as soon as its batch is done."""
    import constriction
    import torch

    differences = check_model(container, loaded)
    if differences:
        warn("decoding in another environment than encoding (" + ", ".join(differences) + "): the model's "
             "probabilities may differ and derail decoding; sizes and --verify will tell")
    family = constriction.stream.model.Categorical(perfect=False)
    files = container.files
    total = sum(f.tokens - f.header_tokens for f in files)
    with _progress(quiet) as bar:
        task = bar.add_task("decompress", total=total)
        for batch, stream in zip(container.batches, container.streams):
            members = [files[i] for i in batch.files]
            tokens = torch.full((len(members), max(f.tokens for f in members)), loaded.pad_id, dtype=torch.long)
            for row, f in enumerate(members):
                header = encode_records(loaded.tokenizer, [path_prompt(f.path)])[0]
                if len(header) != f.header_tokens:
                    raise LaamError(f"{f.path}: its header tokenizes to {len(header)} tokens, the archive says "
                                    f"{f.header_tokens}: not the tokenizer it was compressed with")
                tokens[row, :len(header)] = torch.tensor(header)
            decoder = constriction.stream.queue.RangeDecoder(stream)

            def code(p, rows, probs, decoder=decoder):
                return np.asarray(decoder.decode(family, probs))

            with deterministic():
                step_batch(loaded, tokens, [f.header_tokens for f in members], [f.tokens for f in members],
                           code, lambda n, task=task: bar.update(task, advance=n))
            for row, f in enumerate(members):
                yield rebuild(loaded, f, tokens[row, :f.tokens].tolist(), verify)


def rebuild(loaded: LoadedModel, f: CodedFile, ids: list[int], verify: bool) -> DecodedFile:
    """Record tokens -> the file's exact bytes, with the checks the archive allows."""
    if ids[-1] != loaded.end_file_id or loaded.end_file_id in ids[f.header_tokens:-1]:
        return DecodedFile(f.path, b"", False, "decoded tokens do not end the file where the archive says")
    try:
        data = file_bytes(decode_ids(loaded.tokenizer, ids[f.header_tokens:-1]), f.encoding)
    except (UnicodeError, ValueError) as error:
        return DecodedFile(f.path, b"", False, f"decoded text is not valid {f.encoding} ({error})")
    if len(data) != f.size:
        return DecodedFile(f.path, data, False, f"decoded {len(data)} bytes, expected {f.size}")
    if verify and hashlib.sha256(data).hexdigest() != f.sha256:
        return DecodedFile(f.path, data, False, "SHA-256 differs from the manifest's")
    return DecodedFile(f.path, data, True)


def write_file(out_dir: Path, decoded: DecodedFile) -> Path:
    target = Path(out_dir) / decoded.path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(decoded.data)
    return target


# --- baselines and the report -------------------------------------------------------------------

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
    import bz2

    name, archive, _ = resolve_source(config, progress=False)
    if archive is None:
        return None
    path = archive.path
    raw = path.read_bytes()
    openers = {b"\xfd7zXZ": lzma.decompress, b"\x1f\x8b": gzip.decompress, b"BZh": bz2.decompress}
    for magic, opener in openers.items():
        if raw.startswith(magic):
            return f"{name}.tar", opener(raw)
    return f"{name}.tar", raw


def build_report(loaded: LoadedModel, stats: CodingStats, archive_path: Path, size: ContainerSize,
                 same_bytes: bytes | None, release: tuple[str, bytes] | None,
                 decode_stats: CodingStats | None, verified: int | None, corpus: dict) -> dict:
    """compression.json: what the model card and audit report quote.

    Schema (`format` = "laam-compression/1"; sizes in bytes, rates in bits per byte of file content):
      model: {folder, weights_sha256, weights_bytes, parameters, context, stride, vocab_size}
      corpus: {name, fingerprint, training_corpus (fingerprint equals the model's laam.json), files, bytes,
               coded_tokens}
      archive: {path, bytes, header_bytes, checksum_bytes, payload_bytes} (bytes = the whole file)
      bits_per_byte: {ideal: sum(-log2 p)/bytes (the model's cross-entropy under its float probabilities),
                      stream: 8*payload/bytes (what the range coder actually wrote),
                      decodable: 8*(archive - checksums)/bytes (all that decoding needs: streams + file list),
                      raw: 8*archive/bytes (the whole file, per-file SHA-256 included),
                      adjusted: 8*(archive + weights bytes)/bytes (as in "Language Modeling Is Compression")}
      baselines: {same_bytes: {bytes, "gzip -9"|"xz -9e"|"zstd -19": {bytes, bits_per_byte, seconds}} on the
                  concatenated file contents, or null;
                  archive: {name, same keys} on the corpus's uncompressed release tar (every member, with tar's
                  512-byte headers and zero padding, so its bits/byte run lower than on the contents), or null}
      throughput: {compress_bytes_per_s, compress_seconds, decompress_bytes_per_s, decompress_seconds}
                  (decompress_* null when no round trip was run)
      roundtrip: {files, verified} (files decoded byte-exact with matching SHA-256) or null
      environment: {torch, transformers, constriction, device, threads, attention[, device_name]}
    """
    n = max(stats.bytes, 1)
    parameters = sum(p.numel() for p in loaded.model.parameters())
    config = loaded.model.config
    report = {
        "format": REPORT_FORMAT,
        "model": {"folder": str(loaded.folder), "weights_sha256": loaded.weights_sha256,
                  "weights_bytes": loaded.weights_bytes, "parameters": parameters, "context": loaded.context,
                  "stride": loaded.stride, "vocab_size": config.vocab_size},
        "corpus": {**corpus, "files": stats.files, "bytes": stats.bytes, "coded_tokens": stats.coded_tokens},
        "archive": {"path": str(archive_path), "bytes": size.total, "header_bytes": size.header,
                    "checksum_bytes": size.checksums, "payload_bytes": size.payload},
        "bits_per_byte": {"ideal": stats.ideal_bits / n, "stream": 8 * size.payload / n,
                          "decodable": 8 * (size.total - size.checksums) / n, "raw": 8 * size.total / n,
                          "adjusted": 8 * (size.total + loaded.weights_bytes) / n},
        "baselines": {"same_bytes": baselines(same_bytes) if same_bytes is not None else None,
                      "archive": {"name": release[0], **baselines(release[1])} if release else None},
        "throughput": {"compress_bytes_per_s": stats.bytes_per_second, "compress_seconds": stats.seconds,
                       "decompress_bytes_per_s": decode_stats.bytes_per_second if decode_stats else None,
                       "decompress_seconds": decode_stats.seconds if decode_stats else None},
        "roundtrip": {"files": stats.files, "verified": verified} if verified is not None else None,
        "environment": environment(loaded),
    }
    return report


def read_compression(model_dir: Path | None) -> dict | None:
    """The model folder's compression.json (build_report's schema), if `laam compress` wrote one there."""
    if model_dir is None or not (Path(model_dir) / REPORT_FILE).is_file():
        return None
    try:
        report = json.loads((Path(model_dir) / REPORT_FILE).read_text())
    except (OSError, ValueError):
        return None
    return report if isinstance(report, dict) and "bits_per_byte" in report else None


def compress_corpus(model_dir: Path, out: Path, globs: list[str] | None = None, config: CompressConfig | None = None,
                    cache: Path | None = None, roundtrip: bool = True, same_bytes_baselines: bool = True,
                    archive_baselines: bool = True, report_path: Path | None = None, quiet: bool = True) -> dict:
    """Load the model's training corpus, code the selected files into `out`, round-trip them, and write the
    report (default: compression.json beside `out`). Returns the report."""
    config = config or CompressConfig()
    info = read_model_info(model_dir)
    corpus_config = info.corpus_config(cache)
    corpus = load_corpus(corpus_config, progress=not quiet)
    files = select_files(corpus.files, globs)
    loaded = load_model(model_dir, config.device, quiet)
    container, stats = compress_files(loaded, files, config, quiet=quiet)
    size = write_container(container, out)
    decode_stats, verified = None, None
    if roundtrip:
        decode_stats, verified = CodingStats(files=len(files), bytes=stats.bytes), 0
        started = time.perf_counter()
        expected = {f.path: f.data for f in files}
        for decoded in decompress_container(loaded, read_container(out), verify=True, quiet=quiet):
            verified += decoded.ok and decoded.data == expected[decoded.path]
        decode_stats.seconds = time.perf_counter() - started
    same = b"".join(f.data for f in files) if same_bytes_baselines else None
    release = release_tar_bytes(corpus_config) if archive_baselines else None
    about = {"name": corpus.name, "fingerprint": corpus.fingerprint(),
             "training_corpus": corpus.fingerprint() == info.corpus_fingerprint}
    report = build_report(loaded, stats, Path(out), size, same, release, decode_stats, verified, about)
    report_path = Path(report_path) if report_path else Path(out).with_name(REPORT_FILE)
    report_path.write_text(json.dumps(report, indent=1) + "\n")
    report["report_path"] = str(report_path)
    return report
