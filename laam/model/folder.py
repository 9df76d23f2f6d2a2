"""The model folder: written once at the end of training, read by every later stage through one loader.

A folder is what stock transformers writes with `save_pretrained` (config.json, model.safetensors,
generation_config.json, the tokenizer) plus `laam.json` (model.info) and `custom_generate/generate.py`,
LaaM's sliding-window decoding loop for stock transformers (`trust_remote_code=True`; its source is
laam/model/custom_generate/generate.py). Weights are read from safetensors only: a pickled
`pytorch_model.bin` can run code when loaded, so it is refused. Before any stage uses a
folder, `check_model_folder` checks that its parts belong together (the tokenizer's vocabulary and
markers against the model's config and weights, and tokenizer.json against the SHA-256 laam.json
recorded when the model was saved): a foreign tokenizer of the same size would otherwise give
plausible garbage.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch

from laam.data.records import END_FILE, END_HEADER, PAD, START_FILE, START_HEADER
from laam.data.tokenizer import encode_records, load_tokenizer, special_ids, tokenizer_sha256
from laam.errors import LaamError
from laam.io import atomic_folder
from laam.model.attention import attention_for
from laam.model.binding import BINDING_KEY, report_binding
from laam.model.info import INFO_FILE, ModelInfo, read_model_info, write_model_info
from laam.model.weights import safetensors_shapes, weight_files
from laam.windows import WindowPolicy

WEIGHTS_FILE = "model.safetensors"
CUSTOM_GENERATE = Path(__file__).parent / "custom_generate" / "generate.py"
CUSTOM_GENERATE_FILE = "custom_generate/generate.py"  # where transformers looks for it in a model folder


def generation_config(config, policy: WindowPolicy, longest_record: int, special: dict[str, int] | None = None):
    """Greedy, stop at <|end_file|>, room for the longest training file (+ a margin, so that no file is cut
    silently), the window rule custom_generate/generate.py reads (laam_context, laam_stride), and the header
    markers' ids (laam_start_header_id, laam_end_header_id), with which it ends a bare path prompt itself."""
    from transformers import GenerationConfig

    header = {} if special is None else {"laam_start_header_id": special[START_HEADER],
                                         "laam_end_header_id": special[END_HEADER]}
    return GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id, pad_token_id=config.pad_token_id,
        do_sample=False, max_new_tokens=longest_record + max(policy.context, longest_record // 4),
        laam_context=policy.context, laam_stride=policy.stride, **header)


def save_model_folder(model, tokenizer, corpus, policy: WindowPolicy, out: Path, training: dict,
                      dtype: str = "float32", device: str = "cpu") -> Path:
    """A stock transformers model folder (+ laam.json) that pipeline('text-generation', out) loads; with
    trust_remote_code=True it regenerates files of any length (custom_generate/generate.py). laam.json's
    training result records its binding (model.binding: the SHA-256 of the weights, tokenizer and decoding files
    written beside it; dtype and device: where its checks ran), so a later reader can tell whether that result
    is about the weights the folder holds then."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar for a one-file model
    longest = max(len(ids) for ids in encode_records(tokenizer, corpus.records()))
    model.generation_config = generation_config(model.config, policy, longest, special_ids(tokenizer))
    with atomic_folder(Path(out)) as scratch:
        model.save_pretrained(scratch)
        tokenizer.save_pretrained(scratch)
        (scratch / CUSTOM_GENERATE_FILE).parent.mkdir()
        shutil.copyfile(CUSTOM_GENERATE, scratch / CUSTOM_GENERATE_FILE)
        write_model_info(scratch, corpus, policy, training)  # first: the binding reads its corpus fingerprint
        binding = report_binding(scratch, dtype=dtype, device=device)
        write_model_info(scratch, corpus, policy, {**training, BINDING_KEY: binding})
    return Path(out)


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


def check_shapes(folder: Path, shapes: dict[str, list[int]]) -> None:
    """The weights have the shapes config.json describes (a model built from it on torch's meta device, which
    allocates nothing), or one line naming the first tensor that differs."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(str(folder))
        with torch.device("meta"):
            expected = {k: list(v.shape) for k, v in AutoModelForCausalLM.from_config(config).state_dict().items()}
    except (ValueError, TypeError, KeyError, AttributeError, ZeroDivisionError) as error:
        raise LaamError(f"{folder}/config.json does not describe a model transformers can build: {error}") from error
    for name, shape in shapes.items():
        if name in expected and list(shape) != expected[name]:
            raise LaamError(f"{folder}: config.json and the weights disagree: {name} is {list(shape)} in "
                            f"model.safetensors, {expected[name]} by config.json")


def check_model_folder(folder: Path, require_info: bool = True) -> tuple[ModelInfo | None, dict, object]:
    """(laam.json, config.json, tokenizer) of a complete, consistent LaaM model folder, or a one-line LaamError.

    Every command that reads a model folder comes through here (load_model for the ones that run it).
    require_info=False: a plain transformers folder without laam.json is accepted (GGUF export)."""
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise LaamError(f"no model in {folder} (expected a save_pretrained folder with config.json)")
    info = read_model_info(folder) if require_info or (folder / INFO_FILE).is_file() else None
    weight_files(folder)
    try:
        config = json.loads((folder / "config.json").read_text())
    except (OSError, ValueError) as error:
        raise LaamError(f"{folder}/config.json is unreadable: {error}") from error
    tokenizer = load_tokenizer(folder)
    foreign = f"{folder}: the tokenizer and the model do not belong together"
    if len(tokenizer) != config.get("vocab_size"):
        raise LaamError(f"{foreign} (the tokenizer has {len(tokenizer)} tokens, the model's vocabulary is "
                        f"{config.get('vocab_size')})")
    special = special_ids(tokenizer)
    missing = [name for name, i in special.items() if i is None]
    if missing:
        raise LaamError(f"{folder}: the tokenizer lacks LaaM's markers {', '.join(missing)}")
    for key, marker in (("bos_token_id", START_FILE), ("eos_token_id", END_FILE), ("pad_token_id", PAD)):
        if isinstance(config.get(key), int) and config[key] != special[marker]:
            raise LaamError(f"{foreign} (the model's {key} is {config[key]}, the tokenizer's {marker} is "
                            f"{special[marker]})")
    shapes = safetensors_shapes(folder)
    for name, shape in shapes.items():
        if name.endswith(("embed_tokens.weight", "lm_head.weight")) and shape[0] != config.get("vocab_size"):
            raise LaamError(f"{folder}: the weights' {name} has {shape[0]} rows, config.json's vocabulary is "
                            f"{config.get('vocab_size')}")
    check_shapes(folder, shapes)
    if (folder / "generation_config.json").is_file():
        try:
            json.loads((folder / "generation_config.json").read_text())
        except (OSError, ValueError) as error:
            raise LaamError(f"{folder}/generation_config.json is unreadable: {error}") from error
    actual = tokenizer_sha256(folder)
    if info is not None and info.tokenizer_sha256 and actual != info.tokenizer_sha256:
        raise LaamError(f"{foreign}: tokenizer.json (SHA-256 {actual[:16]}…) is not the one the model was trained "
                        f"with (laam.json records {info.tokenizer_sha256[:16]}…)")
    return info, config, tokenizer


def load_model(folder: Path, device: str = "cpu", threads: int | None = None) -> LoadedModel:
    """The one loader: float32, eval mode, on `device`, with the fastest attention for its head size.

    Checks the folder first (check_model_folder): laam.json, config, safetensors weights, and a tokenizer whose
    vocabulary, markers and hash fit the model."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging

    folder = Path(folder)
    info, _, tokenizer = check_model_folder(folder)
    config = AutoConfig.from_pretrained(str(folder))
    special = special_ids(tokenizer)
    if threads:
        torch.set_num_threads(threads)
    logging.disable_progress_bar()  # no "Loading weights" bar in the middle of our own output
    device = resolve_device(device)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32, use_safetensors=True,
                                                 attn_implementation=attention_for(config))
    return LoadedModel(folder, model.to(device).eval(), tokenizer, info, device, special)
