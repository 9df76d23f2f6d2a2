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

The container format is in proof.compress.container; gzip/xz/zstd baselines in proof.compress.baselines;
the whole `laam compress` run and its compression.json in proof.compress.run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from laam import __version__
from laam.data.corpus import CorpusFile
from laam.data.records import file_bytes, path_prompt
from laam.data.tokenizer import decode_ids, encode_records
from laam.engine.lockstep import step_in_lockstep
from laam.errors import LaamError
from laam.model.folder import LoadedModel
from laam.progress import task_bar
from laam.proof.compress.container import FORMAT, Batch, CodedFile, Container
from laam.provenance import environment as software_environment


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
    """One batch through engine.lockstep under the model's window policy (see there)."""
    step_in_lockstep(loaded.model, tokens, header_tokens, lengths, loaded.policy, code, advance)


def plan_batches(token_counts: list[int], batch_size: int) -> list[list[int]]:
    """Files grouped by similar length (longest first), so lockstep batches waste few padded steps."""
    if batch_size < 1:
        raise LaamError(f"batch size must be at least 1, got {batch_size}")
    order = sorted(range(len(token_counts)), key=lambda i: (-token_counts[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


# --- compress -----------------------------------------------------------------------------------

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


def compress_files(loaded: LoadedModel, files: list[CorpusFile], batch_size: int = 16,
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
    with task_bar(not quiet, unit="tokens") as bar, deterministic():
        task = bar.add_task("compress", total=stats.coded_tokens)
        for members in plan_batches([c.tokens for c in coded], batch_size):
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
                        "context": loaded.policy.context, "stride": loaded.policy.stride,
                        "vocab_size": loaded.model.config.vocab_size},
              "batch_size": batch_size, "environment": environment(loaded)}
    return Container(header, coded, batches, streams), stats


def environment(loaded: LoadedModel) -> dict:
    """What the probabilities depend on besides the weights: software, device, threads, attention kernel."""
    return software_environment(loaded.device, loaded.attention, packages=("constriction",))


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
    if (model["context"], model["stride"]) != (loaded.policy.context, loaded.policy.stride):
        raise LaamError(f"archive coded with context {model['context']}/stride {model['stride']}, model folder says "
                        f"{loaded.policy.context}/{loaded.policy.stride}")
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
    with task_bar(not quiet, unit="tokens") as bar:
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
