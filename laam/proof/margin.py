"""The margin certificate: how far every body token is from being decoded otherwise.

A memorized file comes back under greedy decoding from its bare path when, at the `<|end_header|>` that ends the
path and at every body token (after it, <|end_file|> included), the true token's logit beats every other; the
certificate scores the same tokens as the memorization checks (train.memorization): the path's end is not scored
after a path that is a prefix of another's (data.records.prefix_paths), which every decoder ends itself, and
"body tokens" below counts the scored path ends with them. Teacher-forced 100% says that holds in
one arithmetic (fp32, one batch shape); another dtype, thread count or quantization moves the logits a
little, so a near-tie can flip. The certificate records each body token's margin (engine.forcing: true logit
minus the best other, fp32, under the WindowPolicy context; negative = wrong), its minimum overall and per
file, and a histogram. Positions under a safety threshold are decoded again sequentially (one token at a
time with the KV cache, no drafts: the computation a plain greedy regeneration does; the re-decodes run as one
batch of independent requests, each its own left-padded, masked row, as the engine batches regeneration) and
listed with the two tokens that compete there. margins.npz records the binding (model.binding) of the folder
it was computed on, and `read_margins` returns it only while that folder still matches.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laam.data.records import END_HEADER, PAD, split_record
from laam.data.tokenizer import decode_ids, encode_records, special_ids
from laam.data.tokens import TokenCache
from laam.engine import Request, WindowedGenerator
from laam.engine.forcing import MIN_MARGIN, Columns, iter_margins
from laam.errors import LaamError
from laam.io import atomic_write_bytes
from laam.model.binding import BINDING_KEY, binding_problems
from laam.train.batches import WindowSet
from laam.windows import WindowPolicy

MARGINS_FILE = "margins.npz"
MARGINS_FORMAT = 2  # margins.npz's layout (pack_margins); files without `format` are the first, every column int64


class MarginsNotBound(LaamError):
    """A margins.npz computed on other files than the folder holds now (read_margins); `problems` says what differs
    (model.binding.binding_problems), for a reader such as the model card that names it in its own words."""

    def __init__(self, message: str, problems: list[str]):
        super().__init__(message)
        self.problems = problems


# histogram bins of the margin (logits); the first holds the wrong tokens
EDGES = [-np.inf, 0.0, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, np.inf]


@dataclass
class BodyMargins:
    """Every body token of some records: where it is, the two tokens that compete there, the margin."""

    record: np.ndarray  # int64 record index
    position: np.ndarray  # int64 position in the record's tokens
    target: np.ndarray  # int64 true token
    rival: np.ndarray  # int64 best other token (the runner-up when right, the model's choice when wrong)
    margin: np.ndarray  # float32 logit[target] - logit[rival]
    correct: np.ndarray  # bool: the model's top-1 is the true token
    # [n, k] float32: a `columns` function's values of the same logits (engine.forcing.Columns), when one was given;
    # not stored in margins.npz
    columns: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.margin)


def in_memory_windows(records_ids: list[list[int]], body_starts: list[int], policy: WindowPolicy,
                      paths: list[str] | None = None) -> WindowSet:
    """The training windows (train.batches) of token sequences held in memory."""
    lengths = np.array([len(r) for r in records_ids], dtype=np.int64)
    flat = np.fromiter((t for r in records_ids for t in r), dtype=np.int64, count=int(lengths.sum()))
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
    cache = TokenCache(Path("."), flat, paths or [str(i) for i in range(len(records_ids))], offsets, lengths,
                       np.asarray(body_starts, dtype=np.int64))
    return WindowSet(cache, policy)


def body_margins(model, records_ids: list[list[int]], body_starts: list[int], policy: WindowPolicy, pad_id: int,
                 batch_size: int = 64, on_batch: Callable | None = None,
                 paths: list[str] | None = None, columns: Columns | None = None) -> BodyMargins:
    """Teacher-forced fp32 margins of every body token (positions >= body_start) of each record. With the records'
    `paths`, each path's `<|end_header|>` (the token before body_start) is scored too, as the checks score it: not
    after a path that another extends (train.batches.WindowSet.header_ends); without them (token sequences that
    are not records) only the body is. With `columns`, its values of each scored token's logits come along
    (BodyMargins.columns), from the same pass."""
    window_set = in_memory_windows(records_ids, body_starts, policy, paths)
    parts = []
    for forced in iter_margins(model, window_set, pad_id, batch_size, columns=columns):
        body = (forced.body | forced.header_end if paths is not None else forced.body).numpy()
        m = forced.margins
        parts.append((forced.records[body], forced.positions[body], m.target.numpy()[body], m.rival.numpy()[body],
                      m.margin.numpy()[body].astype(np.float32), m.correct.numpy()[body])
                     + ((m.columns.numpy()[body].astype(np.float32),) if columns is not None else ()))
        if on_batch:
            on_batch()
    if not parts:
        empty = np.zeros(0, dtype=np.int64)
        return BodyMargins(empty, empty, empty, empty, np.zeros(0, dtype=np.float32), np.zeros(0, dtype=bool),
                           np.zeros((0, 0), dtype=np.float32) if columns is not None else None)
    joined = [np.concatenate(c) for c in zip(*parts)]
    order = np.lexsort((joined[1], joined[0]))  # by record, then position
    return BodyMargins(*(c[order] for c in joined))


def find_body_starts(tokenizer, records_ids: list[list[int]]) -> list[int]:
    """Where each record's body begins: right after its `<|end_header|>`."""
    end_header = special_ids(tokenizer)[END_HEADER]
    return [r.index(end_header) + 1 for r in records_ids]


def minimum_margin(model, tokenizer, records: list[str], policy: WindowPolicy, batch_size: int = 64) -> float:
    """The smallest fp32 margin over every body token of `records` (record strings, e.g. CorpusFile.record) and the
    path's end where the checks score it: > 0 means greedy regeneration from the bare path gives every one back in
    fp32, by at least that logit gap."""
    ids = encode_records(tokenizer, records)
    special = special_ids(tokenizer)
    starts = [r.index(special[END_HEADER]) + 1 for r in ids]
    paths = [split_record(r)[0] for r in records]
    margins = body_margins(model, ids, starts, policy, special[PAD], batch_size, paths=paths)
    return float(margins.margin.min()) if len(margins) else float("inf")


def histogram(margin: np.ndarray) -> dict:
    counts, _ = np.histogram(margin, bins=EDGES)
    labels = [f"< {EDGES[1]:g} (wrong)"] + [f"{a:g}–{b:g}" for a, b in zip(EDGES[1:-2], EDGES[2:-1])] \
        + [f">= {EDGES[-2]:g}"]
    return {"bins": labels, "counts": counts.tolist()}


def window_read_at(policy: WindowPolicy, body_start: int, position: int) -> int:
    """Where sequential greedy decoding last read a whole window before predicting `position`: the window's
    first target (body_start in the first window, which the path prompt's prefill reads). The path's end
    (position body_start - 1) is predicted right after the bare path's prefill: it reads up to there."""
    if position < body_start:
        return position
    start = policy.context_start(position)
    return max(body_start, start + policy.context + 1 - policy.stride if start else body_start)


def redecode(model, policy: WindowPolicy, records_ids: list[list[int]], body_starts: list[int],
             spots: list[tuple[int, int]], on_done: Callable | None = None,
             batch_size: int = 64) -> dict[tuple[int, int], dict]:
    """Decode each (record, position) sequentially, as a plain greedy regeneration reaches it: the window read
    once from where the decoder last slid (a prefill), then one token at a time with the KV cache, no drafts.
    Spots of one window share a request; the requests run `batch_size` at a time, each its own sequence (that the
    engine's batched greedy output is its batch-1 output is tested in tests/engine/test_generator.py and, for these
    requests, tests/proof/test_margin.py). Returns per spot the
    token decoded there and whether every token decoded before it in that window was the true one (so it saw the
    true context)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for record, position in spots:
        groups.setdefault((record, window_read_at(policy, body_starts[record], position)), []).append(position)
    keys = list(groups)
    requests = [Request(records_ids[r][:q0], max(groups[(r, q0)]) - q0 + 1) for r, q0 in keys]
    outputs = WindowedGenerator(model, policy, batch_size).run(requests, on_done=on_done)
    found = {}
    for (record, q0), out in zip(keys, outputs):
        truth = records_ids[record][q0:]
        for position in groups[(record, q0)]:
            j = position - q0
            found[(record, position)] = {"token": int(out[j]), "true_context": out[:j] == truth[:j]}
    return found


def margin_certificate(model, tokenizer, paths: list[str], records_ids: list[list[int]], policy: WindowPolicy,
                       threshold: float = MIN_MARGIN, limit: int = 100, batch_size: int = 64,
                       progress: Callable | None = None,
                       columns: Columns | None = None) -> tuple[dict, list[dict], BodyMargins]:
    """audit.json's `margin` section, its per-file figures (in `paths` order) and every body token's margin, with
    the `columns` function's values of the same logits when given (BodyMargins.columns: the sampling certificate's
    log-probabilities, proof.sampling, without a pass of its own)."""
    special = special_ids(tokenizer)
    starts = find_body_starts(tokenizer, records_ids)
    windows = sum(len(policy.windows(len(r))) for r in records_ids)
    tick = progress("margins (teacher forcing, fp32)", -(-windows // batch_size)) if progress else None
    m = body_margins(model, records_ids, starts, policy, special[PAD], batch_size, tick, paths, columns)
    low = np.flatnonzero(m.margin < threshold)
    listed = low[np.argsort(m.margin[low], kind="stable")[:limit]]
    rows = low_rows(model, tokenizer, policy, paths, records_ids, starts, m, listed, progress, batch_size)
    lowest = int(np.argmin(m.margin)) if len(m) else None
    certificate = {
        "threshold": threshold, "body_tokens": len(m), "wrong_tokens": int((~m.correct).sum()),
        "min_margin": round(float(m.margin[lowest]), 4) if lowest is not None else None,
        "min_margin_at": None if lowest is None else {
            "path": paths[int(m.record[lowest])], "position": int(m.position[lowest]),
            "line": line_of(tokenizer, records_ids[int(m.record[lowest])], starts[int(m.record[lowest])],
                            int(m.position[lowest])),
            "true": decode_ids(tokenizer, [int(m.target[lowest])]),
            "rival": decode_ids(tokenizer, [int(m.rival[lowest])])},
        "under_threshold": len(low), "histogram": histogram(m.margin),
        "low": rows, "low_listed": len(rows),
        "sequential": {v: sum(r["sequential"] == v for r in rows) for v in ("agrees", "differs", "diverged earlier")},
        "method": "teacher forcing in float32 under the training/generation windows (laam.windows), all windows "
                  "batched; margin = logit of the true token - the best other logit (< 0: greedy picks another "
                  "token). Scored: every body token and the `<|end_header|>` that ends each path (body_token -1), "
                  "except after a path that another extends, which every decoder ends itself. Those with margin < "
                  f"{threshold:g} (the {limit} lowest at most) were decoded again "
                  "one token at a time with the KV cache (no drafts; each its own sequence, batched as the engine "
                  "batches regeneration), from the window the decoder "
                  "reads when it gets there: `agrees` (it decoded the teacher-forced top-1), `differs`, or `diverged "
                  "earlier` (a token before it in that window already differed from the file, so the contexts "
                  "differ).",
    }
    return certificate, per_file(m, paths, threshold), m


def low_rows(model, tokenizer, policy: WindowPolicy, paths: list[str], records_ids: list[list[int]],
             starts: list[int], m: BodyMargins, listed: np.ndarray, progress: Callable | None,
             batch_size: int = 64) -> list[dict]:
    """The listed low-margin positions, each decoded again sequentially (`batch_size` requests at a time): where,
    the two tokens, what came out."""
    spots = [(int(m.record[i]), int(m.position[i])) for i in listed]
    groups = len({(r, window_read_at(policy, starts[r], p)) for r, p in spots})
    done = progress("sequential re-decode of low margins", groups) if progress and groups else None
    sequential = redecode(model, policy, records_ids, starts, spots, done, batch_size)
    rows = []
    for i, (record, position) in zip(listed, spots):
        seq = sequential[(record, position)]
        top1 = int(m.target[i]) if m.correct[i] else int(m.rival[i])
        rows.append({"path": paths[record], "position": position, "body_token": position - starts[record],
                     "line": line_of(tokenizer, records_ids[record], starts[record], position),
                     "margin": round(float(m.margin[i]), 4),
                     "true": decode_ids(tokenizer, [int(m.target[i])]),
                     "rival": decode_ids(tokenizer, [int(m.rival[i])]), "correct": bool(m.correct[i]),
                     "sequential_token": decode_ids(tokenizer, [seq["token"]]),
                     "sequential": "diverged earlier" if not seq["true_context"]
                     else "agrees" if seq["token"] == top1 else "differs"})
    return rows


def line_of(tokenizer, ids: list[int], body_start: int, position: int) -> int:
    """The file line (1-based) where the token at `position` of a record begins."""
    return decode_ids(tokenizer, ids[body_start:position]).count("\n") + 1


def per_file(m: BodyMargins, paths: list[str], threshold: float) -> list[dict]:
    """Per record: the smallest margin and where, body tokens under the threshold, body tokens wrong."""
    bounds = np.searchsorted(m.record, np.arange(len(paths) + 1))  # m is sorted by record
    out = []
    for record, path in enumerate(paths):
        mine = slice(bounds[record], bounds[record + 1])
        margins = m.margin[mine]
        at = int(np.argmin(margins)) if len(margins) else None
        out.append({"path": path, "min_margin": round(float(margins[at]), 4) if at is not None else None,
                    "min_margin_position": int(m.position[mine][at]) if at is not None else None,
                    "under_safe_margin": int((margins < threshold).sum()),
                    "forced_wrong": int((~m.correct[mine]).sum())})
    return out


def write_margins(margins: BodyMargins, paths: list[str], folder: Path, binding: dict) -> Path:
    """Every body token's margin (record indexes into `paths`), with the binding (model.binding) of the folder they
    were computed on, as JSON text, in the compact layout `pack_margins` makes (format MARGINS_FORMAT)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, paths=np.array(paths), **pack_margins(margins), binding=np.array(json.dumps(binding)))
    return atomic_write_bytes(Path(folder) / MARGINS_FILE, buffer.getvalue())


def smallest_uint(values: np.ndarray) -> np.ndarray:
    """`values` (>= 0) in the smallest unsigned integer type that holds their largest (uint16 for a vocabulary of
    8,192)."""
    return values.astype(np.min_scalar_type(int(values.max()) if len(values) else 0))


def pack_margins(m: BodyMargins) -> dict[str, np.ndarray]:
    """BodyMargins as margins.npz's arrays, with nothing stored that the rest implies: (record, position) as runs of
    consecutive positions of one record (`runs`: record, first position, length; one run per file when every
    position after the path is scored), token ids in the smallest integer type, `correct` only where the margin
    does not decide it (`tied_correct`: a margin > 0 is right, < 0 wrong, by engine.forcing.token_margins'
    definition; at 0 or NaN the top-1 may be either token), the margins themselves exact (float32, as byte
    planes: margin_planes)."""
    step = np.flatnonzero((np.diff(m.record) != 0) | (np.diff(m.position) != 1)) + 1
    starts = np.concatenate([[0], step]).astype(np.int64) if len(m) else np.zeros(0, dtype=np.int64)
    lengths = np.diff(np.append(starts, len(m)))
    runs = np.stack([m.record[starts], m.position[starts], lengths], axis=1) if len(m) else np.zeros((0, 3), np.int64)
    undecided = ~((m.margin > 0) | (m.margin < 0))
    return {"format": np.array(MARGINS_FORMAT), "runs": smallest_uint(np.asarray(runs, dtype=np.int64)),
            "target": smallest_uint(m.target), "rival": smallest_uint(m.rival),
            "margin_planes": margin_planes(m.margin), "tied_correct": m.correct[undecided].astype(bool)}


def margin_planes(margin: np.ndarray) -> np.ndarray:
    """The float32 margins' bytes as 4 planes [4, n] (little-endian: the planes of sign and exponent bits last):
    exact, and deflate packs the slowly varying exponent planes far tighter than interleaved floats (measured:
    3.46 -> 3.02 bytes a margin on 1.7M margins). numpy has no shuffle filter of its own, hence these two lines
    and their inverse in unpack_margins."""
    return np.ascontiguousarray(margin.astype("<f4").view(np.uint8).reshape(-1, 4).T)


def unpack_margins(arrays: dict[str, np.ndarray]) -> BodyMargins:
    """BodyMargins from margins.npz's arrays: the compact layout (pack_margins), or the first one (every column
    stored, int64, no `format`)."""
    if "format" not in arrays:
        return BodyMargins(*(arrays[k] for k in ("record", "position", "target", "rival", "margin", "correct")))
    if int(arrays["format"]) != MARGINS_FORMAT:
        raise ValueError(f"format {int(arrays['format'])}, while this laam reads formats 1 and {MARGINS_FORMAT}")
    runs = arrays["runs"].astype(np.int64).reshape(-1, 3)
    record = np.repeat(runs[:, 0], runs[:, 2])
    offsets = np.cumsum(runs[:, 2]) - runs[:, 2]  # where each run starts among the scored positions
    position = np.repeat(runs[:, 1] - offsets, runs[:, 2]) + np.arange(len(record), dtype=np.int64)
    margin = np.ascontiguousarray(arrays["margin_planes"].T).view("<f4").reshape(-1).astype(np.float32)
    correct = margin > 0
    undecided = ~((margin > 0) | (margin < 0))
    correct[undecided] = arrays["tied_correct"]
    return BodyMargins(record, position, arrays["target"].astype(np.int64), arrays["rival"].astype(np.int64), margin,
                       correct)


def read_margins(path: Path, model_dir: Path) -> tuple[BodyMargins, list[str]]:
    """A margins.npz and its paths, only when its binding matches `model_dir` as it is now: margins of other
    weights, tokenizer or decoding code say nothing about these (one LaamError line naming what differs). Reads
    the compact layout and the first one."""
    try:
        with np.load(Path(path), allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in saved.files}
        binding = json.loads(str(arrays["binding"])) if "binding" in arrays else None
        margins = unpack_margins(arrays)
    except (OSError, ValueError, KeyError) as error:
        raise LaamError(f"{path} is not a readable margin certificate ({error})") from error
    problems = binding_problems({BINDING_KEY: binding}, model_dir)
    if problems:
        raise MarginsNotBound(f"{path} was not computed on {model_dir} as it is now: {'; '.join(problems)}", problems)
    return margins, arrays["paths"].tolist()
