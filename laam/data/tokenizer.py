"""Byte-level BPE tokenizer of an exact vocabulary size, whose decode(encode(record)) == record.

Differences from the original LaaM tokenizer, each of which broke the round trip there:
no prefix space is added, whitespace is left to BPE (no tab/space special tokens), and the
transformers wrapper does not "clean up" spaces. It is trained on file paths and contents,
not whole records, so no merges are wasted on `<|`/`|>` pieces of the markers.

The saved tokenizer's post-processor prepends `<|start_file|><|start_header|>` when asked for
special tokens (transformers' default), so stock `pipeline("text-generation")` turns an empty
prompt into "start a file" and a path prompt into "this file". Training and audit code encode
records, which already carry their markers, with `add_special_tokens=False` (see encode_records).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

from laam.data.records import END_FILE, END_HEADER, PAD, SPECIAL_TOKENS, START_FILE, START_HEADER
from laam.errors import LaamError
from laam.io import atomic_folder, discard_damaged, seal, seal_fault, sha256_file
from laam.progress import task_bar

BYTE_ALPHABET = 256
MIN_VOCAB = BYTE_ALPHABET + len(SPECIAL_TOKENS)
INFO_FILE = "laam_tokenizer.json"


@dataclass
class TokenizerReport:
    vocab_size: int
    learned: int  # tokens BPE learned before padding with reserved tokens
    reserved: int
    seconds: float
    file_bytes: int
    record_tokens: int

    @property
    def bytes_per_token(self) -> float:
        return self.file_bytes / max(self.record_tokens, 1)


def build_bpe(texts, vocab_size: int, min_frequency: int = 2) -> tuple[Tokenizer, int]:
    """Train byte-level BPE on `texts`; pad with reserved special tokens to exactly `vocab_size`."""
    if vocab_size < MIN_VOCAB:
        raise LaamError(f"vocabulary size {vocab_size} is smaller than the byte alphabet plus special tokens "
                        f"({BYTE_ALPHABET} + {len(SPECIAL_TOKENS)} = {MIN_VOCAB})")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    learned = tokenizer.get_vocab_size()
    if learned < vocab_size:  # corpus too small for that many merges: pad, as the original LaaM did
        tokenizer.add_special_tokens([f"<|reserved_{i}|>" for i in range(vocab_size - learned)])
    assert tokenizer.get_vocab_size() == vocab_size, (tokenizer.get_vocab_size(), vocab_size)
    ids = {t: tokenizer.token_to_id(t) for t in (START_FILE, START_HEADER)}
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{START_FILE} {START_HEADER} $A", special_tokens=list(ids.items()))
    return tokenizer, learned


def wrap(tokenizer: Tokenizer):
    """The transformers tokenizer around a trained `tokenizers` one, with bos/eos/pad set."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token=START_FILE, eos_token=END_FILE, pad_token=PAD,
        additional_special_tokens=[START_HEADER, END_HEADER], clean_up_tokenization_spaces=False,
    )


def train_tokenizer(corpus, out: Path, vocab_size: int = 32768, min_frequency: int = 2,
                    replace: bool = True, progress: bool = False) -> TokenizerReport:
    """Train on `corpus` (a data.corpus.Corpus), save to `out` (loadable with AutoTokenizer), and report.

    Texts reach BPE one file at a time and records are encoded in bounded batches, so memory stays near the
    corpus's own size plus BPE's word counts, whatever the tree (a whole modern kernel included).
    Every record must round-trip (RoundTrip) before anything is saved. The folder appears complete or not at all,
    sealed by its checksums.json; with replace=False a folder another process finished first is kept (both
    trained the same tokenizer from the same corpus)."""
    start = time.perf_counter()
    with task_bar(progress, "files") as bar:
        task = bar.add_task("BPE: counting words", total=len(corpus.files))

        def texts():
            for f in corpus.files:
                yield f.path
                yield f.text
                bar.advance(task)
            bar.update(task, description="BPE: merging")

        tokenizer, learned = build_bpe(texts(), vocab_size, min_frequency)
    seconds = time.perf_counter() - start
    hf = wrap(tokenizer)
    tokens, trip = 0, RoundTrip(hf)
    for f, record, ids in zip(corpus.files, corpus.records(), iter_token_ids(
            hf, corpus.records(), progress=progress, total=len(corpus.files), what="round trip")):
        tokens += len(ids)
        trip.check(f.path, record, ids)
    trip.raise_if_failed("the trained tokenizer (not saved)")  # a failed tokenizer never reaches the cache
    report = TokenizerReport(vocab_size, learned, vocab_size - learned, seconds,
                             sum(len(f.data) for f in corpus.files), tokens)
    info = {**report.__dict__, "bytes_per_token": report.bytes_per_token, "min_frequency": min_frequency,
            "corpus": corpus.name, "corpus_fingerprint": corpus.fingerprint()}
    with atomic_folder(Path(out), replace=replace) as scratch:
        hf.save_pretrained(scratch)
        (scratch / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")
        seal(scratch, sorted(p.name for p in scratch.iterdir() if p.is_file()))
    return report


def drop_damaged_tokenizer(folder: Path) -> None:
    """Remove a cached tokenizer folder whose files are not the ones its checksums.json sealed (a cut or edited
    tokenizer.json, a folder never finished), with a one-line note, so that it is trained again."""
    if Path(folder).exists() and (fault := seal_fault(folder)):
        discard_damaged(Path(folder), "cached tokenizer", fault)


def default_tokenizer_dir(corpus, vocab_size: int) -> Path:
    """Where a corpus's tokenizer of a vocabulary size is kept: beside its manifest in the cache."""
    return corpus.folder() / f"tokenizer-v{vocab_size}"


def tokenizer_sha256(folder: Path) -> str:
    """SHA-256 of a folder's tokenizer.json: what a token cache, an archive and laam.json name a tokenizer by."""
    return sha256_file(Path(folder) / "tokenizer.json")


def load_tokenizer(path: Path):
    from transformers import AutoTokenizer

    if not (Path(path) / "tokenizer.json").is_file():
        raise LaamError(f"no tokenizer in {path} (run `laam tokenizer train` first)")
    try:
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as error:  # noqa: BLE001 - tokenizers raises a bare Exception for a file it cannot parse
        problem = " ".join(str(error).split()) or type(error).__name__
        raise LaamError(f"{Path(path) / 'tokenizer.json'} is damaged or not a tokenizer: {problem}") from error


def backend(tokenizer) -> Tokenizer:
    return tokenizer.backend_tokenizer if hasattr(tokenizer, "backend_tokenizer") else tokenizer


def encode_records(tokenizer, records: Iterable[str]) -> list[list[int]]:
    """Token ids of whole records (markers already inside, so no template), in parallel in Rust. Every id is
    kept: for a whole corpus, stream with iter_token_ids instead."""
    return list(iter_token_ids(tokenizer, records))


# One encode_batch call holds ~100 bytes of Encoding per token until it returns: batches are capped in files
# and in characters (≈1.3M tokens, ~150 MB), so a corpus of any size encodes in bounded memory.
BATCH_FILES, BATCH_CHARS = 256, 4_000_000


def _batches(records: Iterable[str]) -> Iterator[list[str]]:
    batch, chars = [], 0
    for record in records:
        if batch and (len(batch) >= BATCH_FILES or chars + len(record) > BATCH_CHARS):
            yield batch
            batch, chars = [], 0
        batch.append(record)
        chars += len(record)
    if batch:
        yield batch


def iter_token_ids(tokenizer, records: Iterable[str], progress: bool = False, total: int | None = None,
                   what: str = "tokenizing") -> Iterator[list[int]]:
    """Token ids of each record, in order, encoded in bounded batches (parallel in Rust within a batch)."""
    tok = backend(tokenizer)
    encode = getattr(tok, "encode_batch_fast", tok.encode_batch)  # _fast: no character offsets, less memory
    with task_bar(progress, "files") as bar:
        task = bar.add_task(what, total=total)
        for batch in _batches(records):
            for encoding in encode(batch, add_special_tokens=False):
                yield encoding.ids
            bar.advance(task, len(batch))


def decode_ids(tokenizer, ids: list[int]) -> str:
    """Exact inverse of encode_records: special tokens kept, no space clean-up."""
    return backend(tokenizer).decode(ids, skip_special_tokens=False)


class RoundTrip:
    """Counts records whose ids do not decode back to the record, by laam's decode (the backend's) and by stock
    transformers' `tokenizer.decode` (which applies tokenizer_config.json's clean_up_tokenization_spaces: one
    edited flag there turns " ?" into "?" for every stock user while laam's own decode still passes)."""

    def __init__(self, tokenizer):
        self.tokenizer, self.records, self.failed = tokenizer, 0, []

    def check(self, path: str, record: str, ids: list[int]) -> None:
        self.records += 1
        stock = getattr(self.tokenizer, "decode", None)
        if decode_ids(self.tokenizer, ids) != record or (
                stock is not None and stock(ids, skip_special_tokens=False) != record):
            self.failed.append(path)

    def raise_if_failed(self, what: str) -> None:
        if self.failed:
            raise LaamError(f"{what} does not round-trip {len(self.failed)} of {self.records} records (first: "
                            f"{self.failed[0]}): decode(encode(record)) must give back every record exactly")


def special_ids(tokenizer) -> dict[str, int]:
    tok = backend(tokenizer)
    return {t: tok.token_to_id(t) for t in (START_FILE, START_HEADER, END_HEADER, END_FILE, PAD)}
