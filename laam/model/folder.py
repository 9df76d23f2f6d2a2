"""The model folder: written once at the end of training, read by every later stage through one loader.

A folder is what stock transformers writes with `save_pretrained` (config.json, model.safetensors,
generation_config.json, the tokenizer) plus `laam.json` (model.info) and `custom_generate/generate.py`,
LaaM's sliding-window decoding loop for stock transformers (`trust_remote_code=True`; its source is
laam/model/custom_generate/generate.py). Weights are read from safetensors only: a pickled
`pytorch_model.bin` can run code when loaded, so it is refused.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from laam.data.records import END_FILE, PAD
from laam.data.tokenizer import encode_records, load_tokenizer, special_ids, tokenizer_sha256
from laam.errors import LaamError
from laam.io import atomic_folder
from laam.model.attention import attention_for
from laam.model.info import ModelInfo, read_model_info, write_model_info
from laam.windows import WindowPolicy

WEIGHTS_FILE = "model.safetensors"
CUSTOM_GENERATE = Path(__file__).parent / "custom_generate" / "generate.py"
CUSTOM_GENERATE_FILE = "custom_generate/generate.py"  # where transformers looks for it in a model folder


def generation_config(config, policy: WindowPolicy, longest_record: int):
    """Greedy, stop at <|end_file|>, room for the longest training file (+ a margin, so that no file is cut
    silently), and the window rule custom_generate/generate.py reads (laam_context, laam_stride)."""
    from transformers import GenerationConfig

    return GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
        do_sample=False, max_new_tokens=longest_record + max(policy.context, longest_record // 4),
        laam_context=policy.context, laam_stride=policy.stride)


def save_model_folder(model, tokenizer, corpus, policy: WindowPolicy, out: Path, training: dict) -> Path:
    """A stock transformers model folder (+ laam.json) that pipeline('text-generation', out) loads; with
    trust_remote_code=True it regenerates files of any length (custom_generate/generate.py)."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar for a one-file model
    longest = max(len(ids) for ids in encode_records(tokenizer, corpus.records()))
    model.generation_config = generation_config(model.config, policy, longest)
    with atomic_folder(Path(out)) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        write_model_info(scratch, corpus, policy, training)
        (scratch / CUSTOM_GENERATE_FILE).parent.mkdir()
        shutil.copyfile(CUSTOM_GENERATE, scratch / CUSTOM_GENERATE_FILE)
    return Path(out)


def weight_files(folder: Path) -> list[Path]:
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        pickled = sorted(Path(folder).glob("pytorch_model*.bin"))
        if pickled:
            raise LaamError(f"{folder} holds only pickled weights ({pickled[0].name}); laam loads safetensors only, "
                            "since unpickling can run code. Convert them where you trust the file: "
                            "AutoModelForCausalLM.from_pretrained(folder).save_pretrained(folder)")
        raise LaamError(f"no model weights (*.safetensors) in {folder}")
    return files


def weights_fingerprint(folder: Path) -> tuple[str, int]:
    """SHA-256 over the weight files and their total size: what an archive or a card names the weights by."""
    digest, size = hashlib.sha256(), 0
    for path in weight_files(folder):
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
                size += len(chunk)
    return digest.hexdigest(), size


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise LaamError(f"device {device} asked for, but torch sees no CUDA device")
    return device


@dataclass
class LoadedModel:
    """A model folder ready for inference: the model, its tokenizer, laam.json and its window policy."""

    folder: Path
    model: object
    tokenizer: object
    info: ModelInfo
    device: str
    special: dict[str, int]  # marker -> token id

    @property
    def policy(self) -> WindowPolicy:
        return self.info.policy

    @property
    def pad_id(self) -> int:
        return self.special[PAD]

    @property
    def end_file_id(self) -> int:
        return self.special[END_FILE]

    @property
    def attention(self) -> str:
        return self.model.config._attn_implementation

    @cached_property
    def _weights(self) -> tuple[str, int]:
        return weights_fingerprint(self.folder)

    @property
    def weights_sha256(self) -> str:
        return self._weights[0]

    @property
    def weights_bytes(self) -> int:
        return self._weights[1]

    @cached_property
    def tokenizer_sha256(self) -> str:
        return tokenizer_sha256(self.folder)


def load_model(folder: Path, device: str = "cpu", threads: int | None = None) -> LoadedModel:
    """The one loader: float32, eval mode, on `device`, with the fastest attention for its head size.

    Checks the folder is a complete LaaM model (laam.json, config, safetensors weights, a tokenizer whose
    vocabulary and markers fit the model) before anything uses it."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging

    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise LaamError(f"no model in {folder} (expected a save_pretrained folder with config.json)")
    info = read_model_info(folder)
    weight_files(folder)
    tokenizer = load_tokenizer(folder)
    config = AutoConfig.from_pretrained(str(folder))
    if len(tokenizer) != config.vocab_size:
        raise LaamError(f"{folder}: the tokenizer has {len(tokenizer)} tokens but the model's vocabulary is "
                        f"{config.vocab_size}: they do not belong together")
    special = special_ids(tokenizer)
    if None in special.values():
        missing = [name for name, i in special.items() if i is None]
        raise LaamError(f"{folder}: the tokenizer lacks LaaM's markers {', '.join(missing)}")
    if threads:
        torch.set_num_threads(threads)
    logging.disable_progress_bar()  # no "Loading weights" bar in the middle of our own output
    device = resolve_device(device)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, use_safetensors=True,
                                                 attn_implementation=attention_for(config))
    return LoadedModel(folder, model.to(device).eval(), tokenizer, info, device, special)
