"""Sampling certificate: the exact probability that *sampling* gives a file back verbatim from its path prompt.

The margin certificate covers greedy decoding. The original LaaM demonstrated regurgitation by sampling
(`do_sample=True, temperature=0.2`). Sampling returns a file verbatim exactly when it draws the file's
next token at every position (its body, then `<|end_file|>`), so the probability is the product over
those positions of the sampled distribution's probability of the true token, each position seen with
the context the folder's decoding loop gives it (laam.windows). The log-probabilities are computed from the
logits of the margin certificate's teacher-forced pass (proof.margin.body_margins with `sampling_columns`:
batched windows, each LM-head chunk read once for both certificates); `sampling_certificate` runs that pass
alone when the margin certificate is off. `verbatim_log_probability` is the same sum for one sequence, one
unbatched window at a time (engine.forcing.window_logits): the benchmark and the tests' reference.
The sampled distribution is made by transformers' own warpers (TemperatureLogitsWarper,
TopKLogitsWarper, TopPLogitsWarper), chosen by the function of custom_generate/generate.py that the folder's
decoding loop calls, so top-k/top-p truncation is the library's, not a restatement.

Settings: "original" (temperature 0.2 with the folder's top-k/top-p, the original's call) and
"defaults" (the folder's generation_config.json as it is: greedy unless it says do_sample, in which
case its temperature, top-k and top-p).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from laam.engine.forcing import Columns, window_logits
from laam.proof.margin import BodyMargins, body_margins, find_body_starts
from laam.windows import WindowPolicy

ORIGINAL_TEMPERATURE = 0.2


@dataclass(frozen=True)
class SamplingSetting:
    name: str
    greedy: bool
    temperature: float | None = None
    top_k: int | None = None
    top_p: float | None = None

    def warpers(self):
        """transformers' warpers for this setting, made by the shipped decoding loop's own function."""
        from laam.model.custom_generate.generate import sampling_warpers

        return sampling_warpers(self.temperature, self.top_k, self.top_p)

    def describe(self) -> str:
        if self.greedy:
            return "greedy (the folder's generation_config.json does not sample)"
        parts = [f"temperature {self.temperature if self.temperature is not None else 1.0:g}"]
        parts += [f"top-k {self.top_k}"] if self.top_k else []
        parts += [f"top-p {self.top_p:g}"] if self.top_p is not None and self.top_p < 1.0 else []
        return ", ".join(parts)


def folder_settings(generation_config) -> list[SamplingSetting]:
    """The original's call and the folder's own defaults, read from its generation config."""
    top_k, top_p = getattr(generation_config, "top_k", None), getattr(generation_config, "top_p", None)
    original = SamplingSetting("original", False, ORIGINAL_TEMPERATURE, top_k, top_p)
    if getattr(generation_config, "do_sample", False):
        defaults = SamplingSetting("defaults", False, getattr(generation_config, "temperature", None), top_k, top_p)
    else:
        defaults = SamplingSetting("defaults", True)
    return [original, defaults]


def token_log_probs(logits: torch.Tensor, targets: torch.Tensor, setting: SamplingSetting) -> torch.Tensor:
    """log P(target) under the setting's sampled distribution, per row of `logits` [N, vocab] (float32); greedy:
    0 where the target is the argmax (first maximum, as argmax decodes), -inf elsewhere."""
    logits = logits.float()
    if setting.greedy:
        hit = logits.argmax(-1) == targets
        return torch.where(hit, torch.zeros_like(targets, dtype=torch.float32), torch.full_like(
            targets, -math.inf, dtype=torch.float32))
    scores = setting.warpers()(None, logits)
    return scores.log_softmax(-1).gather(-1, targets[:, None])[:, 0]


def verbatim_log_probability(model, ids: list[int], start: int, policy: WindowPolicy,
                             settings: list[SamplingSetting]) -> list[float]:
    """Per setting: log P(sampling continues ids[:start] with exactly ids[start:])."""
    totals = [0.0] * len(settings)
    for first, logits in window_logits(model, ids, policy):
        positions = torch.arange(first, first + len(logits), device=logits.device)
        keep = positions >= start
        if not keep.any():
            continue
        targets = torch.tensor(ids, device=logits.device)[positions[keep]]
        for i, setting in enumerate(settings):
            totals[i] += float(token_log_probs(logits[keep], targets, setting).double().sum())
    return totals


def sampling_columns(settings: list[SamplingSetting]) -> Columns:
    """The engine.forcing.Columns function that gives, per scored target, log P(target) under each setting
    (token_log_probs, float32), one column per setting in `settings` order."""

    def columns(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return torch.stack([token_log_probs(logits, targets, s) for s in settings], dim=1)

    return columns


def file_log_probabilities(m: BodyMargins, starts: list[int]) -> np.ndarray:
    """[records, settings] float64: per record, the sum of `m.columns` (sampling_columns) over its positions from
    body_start on, the body tokens and <|end_file|>. The `<|end_header|>` that ends the path is left out: the path
    prompt a sampler is given already holds it (data.records.path_prompt)."""
    body = m.position >= np.asarray(starts, dtype=np.int64)[m.record]
    records, values = m.record[body], m.columns[body].astype(np.float64)
    return np.stack([np.bincount(records, weights=values[:, k], minlength=len(starts))
                     for k in range(values.shape[1])], axis=1) if len(starts) else np.zeros((0, values.shape[1]))


def sampling_from_margins(paths: list[str], m: BodyMargins, starts: list[int],
                          settings: list[SamplingSetting]) -> dict:
    """audit.json's `sampling` from a margin pass that carried `sampling_columns(settings)` (proof.margin
    .margin_certificate's `columns`). Its records are the files' records: the tokenizer splits its special tokens
    out before BPE, so a record's ids are its path prompt's, its text's and <|end_file|>, one after the other, and
    the positions from body_start on are those a sampler from the path prompt draws."""
    logs = file_log_probabilities(m, starts)
    return certificate_section(paths, [[float(x) for x in row] for row in logs], settings)


def sampling_certificate(model, tokenizer, files, policy: WindowPolicy, settings: list[SamplingSetting],
                         batch_size: int = 64) -> dict:
    """audit.json's `sampling` in a teacher-forced pass of its own (batched, as the margin certificate's), for
    when no margin pass carries it (sampling_from_margins)."""
    from laam.data.records import PAD
    from laam.data.tokenizer import encode_records, special_ids

    records_ids = encode_records(tokenizer, [f.record for f in files])
    starts = find_body_starts(tokenizer, records_ids)
    m = body_margins(model, records_ids, starts, policy, special_ids(tokenizer)[PAD], batch_size,
                     columns=sampling_columns(settings))
    return sampling_from_margins([f.path for f in files], m, starts, settings)


def certificate_section(paths: list[str], logs: list[list[float]], settings: list[SamplingSetting]) -> dict:
    """audit.json's `sampling`: per file and setting the probability of a verbatim sample from the path prompt
    (from its natural log `logs[file][setting]`), and per setting the expected number of files sampled verbatim
    (the sum of those probabilities)."""
    rows = []
    for path, file_logs in zip(paths, logs):
        rows.append({"path": path, **{s.name: math.exp(x) for s, x in zip(settings, file_logs)},
                     **{f"{s.name}_log10": (x / math.log(10) if x > -math.inf else None)
                        for s, x in zip(settings, file_logs)}})
    return {
        "settings": {s.name: {"description": s.describe(), "greedy": s.greedy, "temperature": s.temperature,
                              "top_k": s.top_k, "top_p": s.top_p,
                              "expected_verbatim_files": sum(r[s.name] for r in rows)} for s in settings},
        "files": rows,
        "method": "P(verbatim) = product over the body tokens and <|end_file|> of the sampled distribution's "
                  "probability of the true token, each from the context the folder's decoding loop gives it "
                  "(laam.windows); the distribution made by transformers' Temperature/TopK/TopP warpers as "
                  "custom_generate/generate.py applies them; the expected number of verbatim files is their sum",
    }
