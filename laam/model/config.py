"""The model: a stock `transformers.LlamaForCausalLM` built from a typed config.

Every architecture knob is a field (and a `laam train` flag). The weights stay a plain
LlamaForCausalLM so `save_pretrained` output loads in stock `pipeline("text-generation")`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar

import torch

from laam.errors import LaamError
from laam.validation import AT_LEAST_1, POSITIVE, OneOf, SettingError, validate
from laam.windows import WindowPolicy

PRECISIONS = ("auto", "float32", "bf16")


@dataclass
class ModelConfig:
    hidden_size: int = 128
    intermediate_size: int = 512
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 4
    context: int = 256  # most tokens the model reads (max_position_embeddings); see laam.windows
    stride: int = 128  # tokens dropped when the window slides (laam.windows)
    tie_embeddings: bool = False
    vocab_size: int = 4096  # the tokenizer is trained with exactly this many tokens
    # auto: bf16 autocast on CUDA; on CPU float32, or bf16 autocast of the training step where the CPU multiplies
    # bf16 natively and a measurement says it is faster (train.step_mode; emulated bf16 is several times slower)
    precision: str = "auto"
    rope_theta: float = 10000.0

    RULES: ClassVar[dict] = {
        "hidden_size": AT_LEAST_1, "intermediate_size": AT_LEAST_1, "num_layers": AT_LEAST_1, "num_heads": AT_LEAST_1,
        "num_kv_heads": AT_LEAST_1, "context": AT_LEAST_1, "stride": AT_LEAST_1, "vocab_size": AT_LEAST_1,
        "precision": OneOf(PRECISIONS), "rope_theta": POSITIVE,
    }

    def __post_init__(self):
        validate(self, "model")
        if self.hidden_size % self.num_heads:
            raise LaamError(f"hidden size {self.hidden_size} is not a multiple of {self.num_heads} heads")
        if self.num_heads % self.num_kv_heads:
            raise LaamError(f"{self.num_heads} heads are not a multiple of {self.num_kv_heads} key/value heads")
        if not 0 < self.stride <= self.context:
            raise LaamError(f"stride must be in 1..context ({self.context}), got {self.stride}")

    @property
    def policy(self) -> WindowPolicy:
        return WindowPolicy(self.context, self.stride)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        return strict_from_dict(cls, data, "model")


def strict_from_dict(cls, data: dict, what: str):
    """A config dataclass from a dict, naming unknown keys (a typo in a recipe file) instead of a TypeError."""
    unknown = sorted(set(data) - {f.name for f in fields(cls)})
    if unknown:
        raise SettingError(unknown[0], f"unknown {what} setting(s): {', '.join(unknown)}")
    return cls(**data)


def llama_config(config: ModelConfig, special: dict[str, int]):
    """The transformers LlamaConfig; `special` maps <|start_file|>, <|end_file|>, <|pad|> to ids."""
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers, num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads, max_position_embeddings=config.context,
        tie_word_embeddings=config.tie_embeddings, rope_theta=config.rope_theta,
        bos_token_id=special["<|start_file|>"], eos_token_id=special["<|end_file|>"],
        pad_token_id=special["<|pad|>"], attn_implementation="sdpa",
    )


def build_model(config: ModelConfig, special: dict[str, int], seed: int = 0):
    """A freshly initialised float32 LlamaForCausalLM (mixed precision is applied by autocast, not here)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(config, special))
    return model.float()


def count_parameters(model) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
