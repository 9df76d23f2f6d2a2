"""One prompt's generation, as exact bytes: what `laam generate` does, callable without the CLI.

A corpus path is wrapped as its header prompt and the output comes back in the file's own encoding (Linux 1.0 has
one Latin-1 file); a raw prompt is continued as UTF-8. Past the model's context the window slides (laam.windows).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from laam.data.records import END_FILE, generated_bytes, path_prompt
from laam.data.tokenizer import decode_ids, encode_records
from laam.engine.generator import WindowedGenerator
from laam.engine.request import Request
from laam.engine.sampling import Sampling
from laam.errors import LaamError
from laam.model.folder import LoadedModel
from laam.model.info import load_training_corpus
from laam.validation import AT_LEAST_1, check_value


@dataclass
class Generated:
    data: bytes  # every byte generated, <|end_file|> left out
    tokens: int  # tokens generated, <|end_file|> included
    ended: bool  # the model ended the file (else it hit max_new_tokens)
    seconds: float


def path_encoding(loaded: LoadedModel, path: str, cache: Path | None = None) -> str:
    """The encoding a corpus file's bytes come back in: laam.json's record of it, else (a folder written before
    laam.json recorded encodings) the training corpus's, else UTF-8."""
    encoding = loaded.info.encoding(path)
    if encoding is not None:
        return encoding
    try:
        corpus = load_training_corpus(loaded.info, cache)
    except LaamError:
        return "utf-8"
    return next((f.encoding for f in corpus.files if f.path == path), "utf-8")


def generate(loaded: LoadedModel, path: str | None = None, prompt: str | None = None, max_new_tokens: int = 65536,
             sampling: Sampling | None = None, cache: Path | None = None,
             on_bytes: Callable[[bytes], None] | None = None) -> Generated:
    """Generate from a corpus path's header prompt or from a raw prompt (exactly one), until <|end_file|> or
    max_new_tokens. `on_bytes` receives the output as it grows, whole characters at a time (for streaming)."""
    if (path is None) == (prompt is None):
        raise LaamError("give exactly one of a path or a prompt")
    check_value("max_new_tokens", max_new_tokens, AT_LEAST_1)
    encoding = path_encoding(loaded, path, cache) if path is not None else "utf-8"
    ids = encode_records(loaded.tokenizer, [path_prompt(path) if path is not None else prompt])[0]
    stop = loaded.special[END_FILE]
    generated: list[int] = []
    shown = 0  # characters already handed to on_bytes

    def decoded() -> str:
        return decode_ids(loaded.tokenizer, generated[:-1] if generated and generated[-1] == stop else generated)

    def on_token(_, token):
        nonlocal shown
        generated.append(token)
        if on_bytes is None:
            return
        text = decoded()
        if not text.endswith("\ufffd"):  # else half of a multi-byte character: wait for the rest
            on_bytes(generated_bytes(text[shown:], encoding))
            shown = len(text)

    began = time.perf_counter()
    WindowedGenerator(loaded.model, loaded.policy, batch_size=1).run([Request(ids, max_new_tokens, stop)],
                                                                     sampling or Sampling(), on_token=on_token)
    seconds = time.perf_counter() - began
    text = decoded()
    if on_bytes is not None and len(text) > shown:
        on_bytes(generated_bytes(text[shown:], encoding))
    return Generated(generated_bytes(text, encoding), len(generated), bool(generated) and generated[-1] == stop,
                     seconds)
