"""Sampling certificate: the exact probability that *sampling* gives a file back verbatim from its path prompt.

The margin certificate covers greedy decoding. The original LaaM demonstrated regurgitation by sampling
(`do_sample=True, temperature=0.2`). Sampling returns a file verbatim exactly when it draws the file's
next token at every position (its body, then `<|end_file|>`), so the probability is the product over
those positions of the sampled distribution's probability of the true token, each position seen with
the context the folder's decoding loop gives it (laam.windows, through engine.forcing.window_logits).
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

import torch

from laam.engine.forcing import window_logits
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


def sampling_certificate(model, tokenizer, files, policy: WindowPolicy, settings: list[SamplingSetting]) -> dict:
    """audit.json's `sampling`: per file and setting the probability of a verbatim sample from the path prompt,
    and per setting the expected number of files sampled verbatim (the sum of those probabilities)."""
    from laam.data.records import END_FILE, path_prompt
    from laam.data.tokenizer import encode_records, special_ids

    stop = special_ids(tokenizer)[END_FILE]
    prompts = encode_records(tokenizer, [path_prompt(f.path) for f in files])
    bodies = encode_records(tokenizer, [f.text for f in files])
    rows = []
    for f, prompt, body in zip(files, prompts, bodies):
        logs = verbatim_log_probability(model, prompt + body + [stop], len(prompt), policy, settings)
        rows.append({"path": f.path, **{s.name: math.exp(x) for s, x in zip(settings, logs)},
                     **{f"{s.name}_log10": (x / math.log(10) if x > -math.inf else None)
                        for s, x in zip(settings, logs)}})
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
