"""The model: a stock `transformers.LlamaForCausalLM` built from a typed config.

Every architecture knob is a field (and a `laam train` flag of the same name). The weights stay a plain
LlamaForCausalLM so `save_pretrained` output loads in stock `pipeline("text-generation")`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import ClassVar

from laam.errors import LaamError
from laam.validation import AT_LEAST_1, POSITIVE, OneOf, SettingError, setting, validate
from laam.windows import WindowPolicy

PRECISIONS = ("auto", "float32", "bf16")


@dataclass
class ModelConfig:
    """The model's shape: every field is a `laam train` flag of the same name (dashes for underscores) and a key of a
    recipe file's `model` table; laam.json records them under these names (transformers' config.json under its own,
    `llama_config`)."""

    hidden_size: int = setting(128, "Model width.")
    intermediate_size: int = setting(512, "MLP width.")
    num_layers: int = setting(4, "Transformer layers.")
    num_heads: int = setting(4, "Attention heads.")
    num_kv_heads: int = setting(4, "Key/value heads (grouped-query attention; divides --num-heads).")
    context: int = setting(256, "Most tokens the model reads (its positions; laam.windows).")
    stride: int = setting(128, "Tokens the window slides by past the context (1..context; laam.windows).")
    tie_embeddings: bool = setting(False, "Share input and output embeddings.")
    vocab_size: int = setting(4096, "Vocabulary size (the tokenizer is trained with exactly this many tokens).")
    # emulated bf16 is several times slower than float32 on a CPU without native bf16, hence the measurement
    precision: str = setting("auto", "auto (bf16 autocast on CUDA; on CPU float32, or bf16 autocast for the training "
                                     "step where the CPU has native bf16 and it measured faster, checks staying "
                                     "float32), float32 or bf16.")
    rope_theta: float = setting(10000.0, "RoPE base frequency.")

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
    import torch  # here, not at the top: the CLI reads this module's fields for its flags without loading torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(llama_config(config, special))
    return model.float()


def count_parameters(model) -> int:
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
