"""The memorization checks of a training run.

`measure_memorization` (during training): teacher-forced greedy accuracy over every window, each target
seen exactly as greedy generation under the WindowPolicy sees it, so 100% means every body token comes
back when the file is regenerated from its path, up to float rounding at near-ties. `verify_records`
(`--verify`, after training) settles that by regenerating every file with the decoding engine.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import torch

from laam.data.records import END_FILE
from laam.data.tokenizer import special_ids
from laam.engine import Request, WindowedGenerator
from laam.train.batches import IGNORE, WindowSet
from laam.windows import WindowPolicy


@torch.no_grad()
def measure_memorization(model, window_set: WindowSet, pad_id: int, batch_size: int = 64, rank: int = 0,
                         world: int = 1, device=None, autocast=None) -> dict[str, int]:
    """Teacher-forced greedy next-token accuracy over every window (each target seen exactly as greedy
    generation sees it, see laam.windows). Body = tokens after <|end_header|>, which a path prompt must bring
    back; header tokens (which file comes next) are not predictable. Returns this process's counts, and per
    file 1 where this process saw a wrong body token, and per window (0 for windows another process measured)
    its wrong body tokens and its smallest body margin: the error-focused sampler's input (WindowSampler)."""
    model.eval()
    device = device or next(model.parameters()).device
    counts = torch.zeros(4, dtype=torch.long)
    wrong_records: set[int] = set()
    window_wrong = torch.zeros(len(window_set), dtype=torch.long)
    window_margin = torch.zeros(len(window_set), dtype=torch.float64)
    indices = np.arange(rank, len(window_set), world)
    for i in range(0, len(indices), batch_size):
        chunk = indices[i:i + batch_size]
        batch = window_set.batch(chunk, pad_id)
        labels, body = batch["labels"].to(device), batch["body"].to(device)
        with autocast() if autocast else contextlib.nullcontext():
            hidden = model.model(input_ids=batch["input_ids"].to(device)).last_hidden_state
        scored = labels != IGNORE
        logits = model.lm_head(hidden[scored].to(model.lm_head.weight.dtype)).float()
        correct = logits.argmax(-1) == labels[scored]
        in_body = body[scored]
        counts += torch.tensor([int(correct[in_body].sum()), int(in_body.sum()), int(correct.sum()),
                                int(scored.sum())])
        wrong = (~correct & in_body).cpu()
        rows = torch.repeat_interleave(torch.arange(len(chunk)), scored.sum(1).cpu())
        wrong_records.update(int(window_set.rows[chunk[r], 0]) for r in rows[wrong].unique().tolist())
        window_wrong[chunk] = torch.zeros(len(chunk), dtype=torch.long).index_add_(0, rows, wrong.long())
        window_margin[chunk] = body_margins(logits, labels[scored], in_body, rows, len(chunk))
    model.train()
    wrong_files = torch.zeros(len(window_set.cache.paths), dtype=torch.long)
    wrong_files[sorted(wrong_records)] = 1
    return {"body_correct": int(counts[0]), "body_total": int(counts[1]), "all_correct": int(counts[2]),
            "all_total": int(counts[3]), "wrong_by_file": wrong_files, "window_wrong": window_wrong,
            "window_margin": window_margin}


def body_margins(logits: torch.Tensor, targets: torch.Tensor, in_body: torch.Tensor, rows: torch.Tensor,
                 n_rows: int) -> torch.Tensor:
    """Per window, the smallest margin over its body targets: the right token's logit minus the best other
    (negative where greedy decoding is wrong; +inf for a window without body targets)."""
    right = logits.gather(1, targets[:, None]).squeeze(1)
    top = logits.topk(2, dim=-1)
    other = torch.where(top.indices[:, 0] == targets, top.values[:, 1], top.values[:, 0])
    margin = (right - other).cpu().double()
    margin[~in_body.cpu()] = float("inf")
    return torch.full((n_rows,), float("inf"), dtype=torch.float64).scatter_reduce_(0, rows, margin, "amin")


def summarize(counts: dict) -> dict:
    return {**counts, "memorized": counts["body_correct"] / max(1, counts["body_total"]),
            "accuracy": counts["all_correct"] / max(1, counts["all_total"])}


@dataclass
class RegenerationReport:
    files: int
    exact: int
    tokens: int  # body tokens checked
    wrong: dict[str, int] = field(default_factory=dict)  # path -> first wrong position in its record

    @property
    def all_exact(self) -> bool:
        return self.exact == self.files


def verify_records(model, cache, policy: WindowPolicy, tokenizer, batch_size: int = 64) -> RegenerationReport:
    """Regenerate every record of a token cache (data.tokens) from its header and compare, token for token.

    Each request stops at its first token that differs from the record (Request.until_divergence), so a file
    that is not memorized costs little more than one that is."""
    stop = special_ids(tokenizer)[END_FILE]
    records = [cache.record(i).tolist() for i in range(len(cache.paths))]
    starts = [int(b) for b in cache.body_starts]
    requests = [Request(ids[:start], len(ids) - start, stop, ids[start:], until_divergence=True)
                for ids, start in zip(records, starts)]
    outputs = WindowedGenerator(model, policy, batch_size).run(requests)
    wrong = {}
    for path, ids, start, out in zip(cache.paths, records, starts, outputs):
        truth = ids[start:]
        if out != truth:
            differs = next((j for j, (a, b) in enumerate(zip(out, truth)) if a != b), min(len(out), len(truth)))
            wrong[path] = start + differs
    return RegenerationReport(len(records), len(records) - len(wrong), sum(len(r) - s for r, s in zip(records, starts)),
                              wrong)
