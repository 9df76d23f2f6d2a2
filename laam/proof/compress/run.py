"""`laam compress` end to end: code a model's training corpus under the model, round-trip it, and write
compression.json, the figures the model card and the audit report quote."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from laam.data.corpus import select_files
from laam.errors import LaamError
from laam.io import atomic_write_text
from laam.model.binding import BINDING_KEY, changed_during, folder_state, report_binding
from laam.model.folder import LoadedModel, load_model
from laam.model.info import load_training_corpus
from laam.proof.compress.baselines import baselines, release_tar_bytes
from laam.proof.compress.coder import CodingStats, compress_files, decompress_container, environment
from laam.proof.compress.container import ContainerSize, read_container, write_container
from laam.validation import AT_LEAST_1, validate

REPORT_FORMAT = "laam-compression/1"
REPORT_FILE = "compression.json"  # `laam compress --out MODEL/NAME.laamz` writes it into the model folder


@dataclass
class CompressConfig:
    """How to run the model while coding (the decoder follows the batches stored in the container)."""

    # Files stepped together: each batch runs as many steps as its longest file has tokens, and a step costs more
    # the more rows it has. Benchmark bench_compress (results/bench_compress.json: the whole-kernel model, Linux
    # 1.0's 561 files, AMD EPYC, 2 threads) projects 13.2, 11.8, 12.0 and 15.7 minutes each way at 16, 32, 64 and
    # 128 files per batch; 64 keeps a 5.5M-parameter model's batches busy at a few points of that best.
    batch_size: int = 64
    device: str = "auto"  # auto = cuda when available, else cpu

    RULES: ClassVar[dict] = {"batch_size": AT_LEAST_1}

    def __post_init__(self):
        validate(self, "compress")


def build_report(loaded: LoadedModel, stats: CodingStats, archive_path: Path, size: ContainerSize,
                 same_bytes: bytes | None, release: tuple[str, bytes] | None,
                 decode_stats: CodingStats | None, verified: int | None, corpus: dict) -> dict:
    """compression.json: what the model card and audit report quote.

    Schema (`format` = "laam-compression/1"; sizes in bytes, rates in bits per byte of file content):
      model: {folder, weights_sha256, weights_bytes, parameters, context, stride, vocab_size}
      corpus: {name, fingerprint, training_corpus (fingerprint equals the model's laam.json), selected (the
               --files globs, null: every file), files, bytes, coded_tokens}
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
      binding: model.binding.report_binding (the folder's file hashes, corpus, selection, laam commit)
    """
    n = max(stats.bytes, 1)
    parameters = sum(p.numel() for p in loaded.model.parameters())
    config = loaded.model.config
    report = {
        "format": REPORT_FORMAT,
        "model": {"folder": str(loaded.folder), "weights_sha256": loaded.weights_sha256,
                  "weights_bytes": loaded.weights_bytes, "parameters": parameters,
                  "context": loaded.policy.context, "stride": loaded.policy.stride, "vocab_size": config.vocab_size},
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
        BINDING_KEY: report_binding(loaded.folder, corpus.get("selected"), device=loaded.device),
    }
    return report


def read_compression(model_dir: Path | None) -> dict | None:
    """The model folder's compression.json (build_report's schema), if `laam compress` wrote one there (whatever
    its binding: publish.facts checks that before quoting it)."""
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
    report (default: compression.json beside `out`). Returns the report. A bound file of the folder that changes
    while it runs leaves no report, and the container is removed (model.binding.changed_during)."""
    config = config or CompressConfig()
    before = folder_state(model_dir)  # compared again before compression.json is written (changed_during)
    loaded = load_model(model_dir, config.device)
    corpus = load_training_corpus(loaded.info, cache, progress=not quiet)
    files = select_files(corpus.files, globs)
    container, stats = compress_files(loaded, files, config.batch_size, quiet=quiet)
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
    release = release_tar_bytes(corpus.config) if archive_baselines else None
    about = {"name": corpus.name, "fingerprint": corpus.fingerprint(),
             "training_corpus": corpus.fingerprint() == loaded.info.corpus_fingerprint,
             "selected": ", ".join(globs) if globs else None}
    report = build_report(loaded, stats, Path(out), size, same, release, decode_stats, verified, about)
    report_path = Path(report_path) if report_path else Path(out).with_name(REPORT_FILE)
    changed = changed_during(before, model_dir, "the compression")
    if changed:  # the container was coded under weights the folder no longer holds: nothing vouches for it
        Path(out).unlink(missing_ok=True)
        raise LaamError(f"{changed}: no {report_path.name} written and {out} removed; compress it again")
    atomic_write_text(report_path, json.dumps(report, indent=1) + "\n")
    report["report_path"] = str(report_path)
    return report
