"""Regenerate files greedily from their path prompts with the decoding engine, as exact bytes.

`regenerate` is what the audit and `laam extract` run (the check at the end of `laam train --verify`,
train.memorization.verify_records, steps through the same engine). With drafts, each file's original
tokens are checked a window per forward pass (engine.drafts): the output is the model's greedy output
either way, it only comes faster when memorized.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from laam.data.corpus import CorpusFile
from laam.data.records import END_FILE, generated_bytes, path_prompt
from laam.data.tokenizer import decode_ids, encode_records, special_ids
from laam.engine import Request, WindowedGenerator
from laam.windows import WindowPolicy


@dataclass
class Regenerated:
    file: CorpusFile
    original_ids: list[int]  # body tokens of the original (no <|end_file|>)
    ids: list[int]  # body tokens generated (no <|end_file|>)
    ended: bool  # the model emitted <|end_file|>
    data: bytes  # the regenerated file's bytes


def split_output(ids: list[int], stop: int) -> tuple[list[int], bool]:
    """Generated body tokens up to (not including) <|end_file|>, and whether the model ended the file."""
    if stop in ids:
        return ids[:ids.index(stop)], True
    return ids, False


def budget(original_tokens: int, margin: float) -> int:
    """New tokens allowed for a file: (1 + margin) x its length + 16 (output past that is wrong anyway)."""
    return int(original_tokens * (1 + margin)) + 16


def regenerate(model, tokenizer, files: list[CorpusFile], policy: WindowPolicy, batch_size: int = 64,
               margin: float = 0.1, on_done: Callable[[int, list[int]], None] | None = None,
               engine: WindowedGenerator | None = None, drafts: bool = True) -> list[Regenerated]:
    """Greedy regeneration of each file from its path prompt, all files batched (longest first, so the batch
    stays full while the long files run)."""
    stop = special_ids(tokenizer)[END_FILE]
    prompts = encode_records(tokenizer, [path_prompt(f.path) for f in files])
    bodies = encode_records(tokenizer, [f.text for f in files])
    order = sorted(range(len(files)), key=lambda i: -len(bodies[i]))
    requests = [Request(prompts[i], budget(len(bodies[i]), margin), stop, bodies[i] + [stop] if drafts else None)
                for i in order]
    engine = engine or WindowedGenerator(model, policy, batch_size)
    outputs = engine.run(requests, on_done=on_done)
    results: list[Regenerated | None] = [None] * len(files)
    for i, out in zip(order, outputs):
        ids, ended = split_output(out, stop)
        data = generated_bytes(decode_ids(tokenizer, ids), files[i].encoding)
        results[i] = Regenerated(files[i], bodies[i], ids, ended, data)
    return results  # type: ignore[return-value]
