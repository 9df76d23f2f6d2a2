"""LaaM's decoding loop, for stock transformers: `trust_remote_code=True` makes `generate` use it.

A LaaM model reads at most `context` tokens. Past that, generation slides the way the model was
trained: the oldest `stride` tokens are dropped and the window is read again from scratch, so the
token at position p is predicted from tokens [context_start(p), p) (see `context_start`). Stock
`generate` instead keeps attending to every earlier token, which this model never saw in training,
and leaves a long file right after its first `context` tokens.

This file is copied into every model folder LaaM writes, as `custom_generate/generate.py`, where
transformers finds it:

    from transformers import pipeline
    generate = pipeline("text-generation", "MODEL", trust_remote_code=True)
    print(generate("linux/lib/ctype.c", return_full_text=False)[0]["generated_text"])

It imports only torch and transformers (never laam) and reads `context` and `stride` from the
model's generation_config.json (`laam_context`, `laam_stride`). Greedy by default, as the model's
generation config says; `do_sample=True` with `temperature`/`top_k`/`top_p` samples instead. It stops
at the end-of-file token (eos) or after `max_new_tokens`.

A prompt that is a bare path (`<|start_file|><|start_header|>PATH`, what the tokenizer makes of "PATH") is ended
with `<|end_header|>` here (ids from generation_config.json: `laam_start_header_id`, `laam_end_header_id`), so the
model is never asked to guess where a path ends: `linux/drivers/sound/Readme` and `linux/drivers/sound/Readme.linux`
both name their own file. `laam_complete_path=True` leaves the header open, for the model to complete a path.

It restates laam.windows.WindowPolicy.context_start (a model folder cannot import laam); LaaM's test
suite holds the two, and this loop's output, to `laam generate`, token for token.
"""

from __future__ import annotations

import copy
import inspect

import torch


def context_start(position: int, context: int, stride: int) -> int:
    """First token the model sees when predicting the token at `position` (it sees at most `context`)."""
    if position <= context:
        return 0
    return ((position - context - 1) // stride + 1) * stride


def window_rule(model, config) -> tuple[int, int]:
    """(context, stride) from the generation config given, else the model's own."""
    for source in (config, model.generation_config):
        context, stride = getattr(source, "laam_context", None), getattr(source, "laam_stride", None)
        if context and stride:
            return int(context), int(stride)
    raise ValueError("this model's generation_config.json has no laam_context / laam_stride: "
                     "not a LaaM model folder, or written before they were recorded")


def _settings(model, generation_config, kwargs):
    """The model's generation config, updated by the config and keyword arguments of this call."""
    config = copy.deepcopy(model.generation_config)
    if generation_config is not None:
        config.update(**generation_config.to_diff_dict())
    config.update(**kwargs)
    for name in ("num_beams", "num_return_sequences"):
        if (getattr(config, name, None) or 1) > 1:
            raise ValueError(f"LaaM's decoding loop gives one sequence per prompt: {name} must be 1")
    if getattr(config, "return_dict_in_generate", False):
        raise ValueError("LaaM's decoding loop returns token ids only (return_dict_in_generate is not supported)")
    return config


def end_path(prompt: list[int], config) -> list[int]:
    """The prompt with `<|end_header|>` appended when it opens a header, names a path and does not close it (a bare
    path; an empty prompt, `<|start_file|><|start_header|>`, still leaves the model to start a file of its own)."""
    start = getattr(config, "laam_start_header_id", None)
    end = getattr(config, "laam_end_header_id", None)
    if start is None or end is None or start not in prompt:
        return prompt
    path = prompt[prompt.index(start) + 1:]
    return prompt if not path or end in path else prompt + [int(end)]


def _eos_ids(config) -> set[int]:
    eos = config.eos_token_id
    return set() if eos is None else {int(e) for e in (eos if isinstance(eos, (list, tuple)) else [eos])}


def sampling_warpers(temperature, top_k, top_p):
    """transformers' own temperature / top-k / top-p warpers, each added only where it changes the distribution.
    LaaM's sampling certificate (laam/proof/sampling.py) calls this function, so the probabilities it certifies
    are those of the distribution this loop samples from."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers = LogitsProcessorList()
    if temperature is not None and temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p is not None and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    return warpers


def _chooser(config):
    """Argmax, or sampling through transformers' own warpers (sampling_warpers)."""
    if not config.do_sample:
        return lambda logits: int(logits.argmax(-1))
    warpers = sampling_warpers(config.temperature, config.top_k, config.top_p)

    def sample(logits):
        scores = warpers(None, logits[None].float())
        return int(torch.multinomial(scores.softmax(-1), 1))

    return sample


class _Forward:
    """model(...) with the argument names of the installed transformers (`cache` from 5.x, `past_key_values`
    before; `logits_to_keep`, `num_logits_to_keep` before 4.50)."""

    def __init__(self, model):
        parameters = inspect.signature(model.forward).parameters
        self.model = model
        self.cache_name = "cache" if "cache" in parameters else "past_key_values"
        self.keep = {"logits_to_keep": 1} if "logits_to_keep" in parameters else (
            {"num_logits_to_keep": 1} if "num_logits_to_keep" in parameters else {})

    def __call__(self, ids: list[int], first_position: int, window: int, cache):
        """Last logits after reading `ids` (at positions first_position…) over a window of `window` tokens."""
        device = self.model.device
        out = self.model(input_ids=torch.tensor([ids], device=device),
                         attention_mask=torch.ones((1, window), dtype=torch.long, device=device),
                         position_ids=torch.arange(first_position, first_position + len(ids), device=device)[None],
                         use_cache=True, **{self.cache_name: cache}, **self.keep)
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        return out.logits[0, -1], cache


def continue_file(model, prompt: list[int], max_new_tokens: int, context: int, stride: int, stop: set[int],
                  choose=None, on_token=None) -> list[int]:
    """New tokens after `prompt` under the sliding window, with a KV cache while the window holds."""
    forward = _Forward(model)
    choose = choose or (lambda logits: int(logits.argmax(-1)))
    tokens, generated, start, cache = list(prompt), [], -1, None
    while len(generated) < max_new_tokens:
        window_start = context_start(len(tokens), context, stride)
        if window_start != start:  # a new window (the first, or the policy slid): read it from scratch
            start = window_start
            logits, cache = forward(tokens[start:], 0, len(tokens) - start, None)
        else:  # the window holds: one cached step
            logits, cache = forward(tokens[-1:], len(tokens) - 1 - start, len(tokens) - start, cache)
        token = choose(logits)
        tokens.append(token)
        generated.append(token)
        if on_token is not None:
            on_token(token)
        if token in stop:
            break
    return generated


@torch.no_grad()
def generate(*args, model=None, inputs=None, input_ids=None, attention_mask=None, generation_config=None,
             streamer=None, **kwargs):
    """What `model.generate` returns (prompt + new tokens, one row per prompt, padded with pad_token_id), made
    with LaaM's sliding window. Left-padded batches are decoded one row at a time."""
    if args:  # model.generate(ids): transformers binds `model` by keyword, so the prompt comes positionally
        inputs = args[0]
    ids = input_ids if input_ids is not None else inputs
    for unused in ("logits_processor", "stopping_criteria", "prefix_allowed_tokens_fn", "synced_gpus",
                   "assistant_model", "negative_prompt_ids", "negative_prompt_attention_mask", "tokenizer",
                   "use_model_defaults"):
        kwargs.pop(unused, None)
    complete_path = kwargs.pop("laam_complete_path", False)
    config = _settings(model, generation_config, kwargs)
    context, stride = window_rule(model, config)
    if ids is None:  # no prompt: start a file
        ids = torch.tensor([[config.bos_token_id]], dtype=torch.long)
    if ids.dim() == 1:
        ids = ids[None]
    mask = attention_mask if attention_mask is not None else torch.ones_like(ids)
    pad = config.pad_token_id if config.pad_token_id is not None else (sorted(_eos_ids(config)) or [0])[0]
    choose = _chooser(config)
    rows = []
    for row, row_mask in zip(ids.tolist(), mask.tolist()):
        given = [token for token, keep in zip(row, row_mask) if keep]
        prompt = given if complete_path else end_path(given, config)
        added = prompt[len(given):]  # the <|end_header|> ending a bare path: the first new token
        row = row + added
        if config.max_new_tokens is not None:
            budget = config.max_new_tokens
        else:
            budget = max(0, (config.max_length or len(given) + context) - len(given))
        if streamer is not None:
            streamer.put(torch.tensor(prompt))
        on_token = (lambda token: streamer.put(torch.tensor([token]))) if streamer is not None else None
        new = continue_file(model, prompt, max(0, budget - len(added)), context, stride, _eos_ids(config), choose,
                            on_token)
        rows.append(row + new)
        if streamer is not None:
            streamer.end()
    width = max(len(r) for r in rows)
    return torch.tensor([r + [pad] * (width - len(r)) for r in rows], dtype=torch.long, device=ids.device)
