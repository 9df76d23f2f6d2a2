"""Any Hugging Face causal LM (a local folder or a Hub id) with its own tokenizer, for auditing models laam did
not train.

The same "nothing is unpickled" rule as laam's own folders: weights are read from safetensors only
(`use_safetensors=True`; a local folder with only pickled weights is refused by model.weights before
transformers is asked), and code shipped with a model runs only when the caller passes
`trust_remote_code`. The model reads as much context as its config allows (`max_position_embeddings`,
`n_positions`, or `n_ctx`); a folder whose generation_config.json names a window rule (laam's
`laam_context`/`laam_stride`) is read with that rule, so a laam folder audited as a foreign model
decodes exactly as `laam generate` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from laam.data.tokenizer import special_ids
from laam.errors import LaamError
from laam.model.weights import weight_files
from laam.windows import WindowPolicy, default_stride

CONTEXT_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "seq_length")


@dataclass
class ForeignModel:
    """A loaded causal LM, its tokenizer, and the window it generates with."""

    source: str  # the folder or Hub id it came from
    model: object
    tokenizer: object
    policy: WindowPolicy
    laam_records: bool  # the tokenizer has laam's record markers: documents are laam records


def model_context(config, generation_config=None) -> WindowPolicy:
    """The window the model generates with: laam's rule when its generation config names one, else its whole
    positional range with windows sliding by half of it."""
    laam_context = getattr(generation_config, "laam_context", None)
    if laam_context:
        return WindowPolicy(int(laam_context), int(getattr(generation_config, "laam_stride", None)
                                                   or default_stride(int(laam_context))))
    for key in CONTEXT_KEYS:
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return WindowPolicy(value, default_stride(value))
    raise LaamError(f"the model's config names no context length ({', '.join(CONTEXT_KEYS)})")


def load_foreign_model(source: str | Path, trust_remote_code: bool = False, threads: int | None = None) -> ForeignModel:
    """Load a causal LM and its tokenizer in float32, eval mode, on the CPU; safetensors weights only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging

    source = str(source)
    if Path(source).is_dir():
        weight_files(Path(source))  # refuses a folder with only pickled weights, with the way to convert them
    elif Path(source).exists():
        raise LaamError(f"{source} is a file; give a model folder or a Hub id")
    if threads:
        torch.set_num_threads(threads)
    logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32, use_safetensors=True,
                                                     trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        raise LaamError(f"cannot load {source} as a causal LM with safetensors weights: "
                        f"{' '.join(str(error).split())[:300]}") from error
    policy = model_context(model.config, getattr(model, "generation_config", None))
    markers = special_ids(tokenizer)
    return ForeignModel(source, model.eval(), tokenizer, policy, all(i is not None for i in markers.values()))
