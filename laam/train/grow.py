"""Growing a trained model at resume: more layers or a wider MLP, starting as the same function.

A model that has stopped gaining at the end of a long run may lack the capacity for the last wrong tokens.
Training a larger one from scratch throws away the run; instead `--resume --num-layers N --allow-change
model.num_layers` (or `--intermediate-size`) starts the larger model from the checkpoint so that it computes
exactly what the checkpoint computed, and only training moves it away:

- a new layer is a copy of the layer before it whose two output projections (attention `o_proj`, MLP
  `down_proj`) are zero, so it adds nothing to the residual stream until trained (LLaMA Pro's block
  expansion, arXiv:2401.02415); new layers are spread evenly, each after the old layer that ends its group;
- a wider MLP gets new `gate_proj`/`up_proj` rows drawn at the spread of the trained rows, and zero
  `down_proj` columns.

The optimizer state follows the parameters (Adam moments of a widened matrix are padded with zeros; a new
layer starts with none), so the old weights go on exactly as they would have. transformers has no such
operation (its resize only covers embeddings), hence this module. Every other shape change is refused:
the saved weights cannot start such a model.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import torch

from laam.errors import LaamError
from laam.model.config import ModelConfig, llama_config
from laam.train.optimizer import parameter_groups

GROWABLE = ("num_layers", "intermediate_size")
# settings that give the weights their shapes; the others (context, precision, RoPE base) load as they are
SHAPES = ("hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads", "vocab_size",
          "tie_embeddings")
OUTPUTS = ("self_attn.o_proj.weight", "mlp.down_proj.weight")  # zero in a new layer: it starts as the identity
MLP_ROWS = ("mlp.gate_proj.weight", "mlp.up_proj.weight")  # [intermediate, hidden]: a wider MLP adds rows
MLP_COLUMNS = "mlp.down_proj.weight"  # [hidden, intermediate]: a wider MLP adds columns
_LAYER = re.compile(r"^model\.layers\.(\d+)\.(.+)$")


def growth(saved: ModelConfig, now: ModelConfig) -> dict[str, tuple]:
    """{setting: (saved, now)} for each shape setting that differs; an error unless each one grows the model."""
    differ = {name: (getattr(saved, name), getattr(now, name)) for name in SHAPES
              if getattr(saved, name) != getattr(now, name)}
    refused = [f"{name} {old} -> {new}" for name, (old, new) in differ.items()
               if name not in GROWABLE or new < old]
    if refused:
        raise LaamError(f"cannot start this model from the checkpoint ({', '.join(refused)}): a trained model can "
                        f"only grow its {' or '.join(GROWABLE)}; keep the other shape settings")
    return differ


def layer_sources(old: int, new: int) -> list[tuple[int, bool]]:
    """For each layer of the grown model, (the old layer it starts from, whether it is a new copy)."""
    extra = new - old
    after = [0] * old  # new layers inserted after each old one: evenly, each at the end of its group
    for j in range(extra):
        after[max(0, (j + 1) * old // extra - 1)] += 1
    return [source for i in range(old) for source in [(i, False)] + [(i, True)] * after[i]]


class Growth:
    """Loads a checkpoint of a smaller model into a grown one, weights and optimizer state."""

    def __init__(self, saved: ModelConfig, now: ModelConfig, special: dict[str, int], seed: int):
        self.saved, self.now, self.special, self.seed = saved, now, special, seed

    @classmethod
    def between(cls, saved_identity: dict | None, now: ModelConfig, special: dict[str, int],
                seed: int) -> Growth | None:
        """The growth from a checkpoint's identity (train.resume.run_identity) to `now`; None if the shapes match."""
        if not saved_identity:
            return None
        saved = {k.removeprefix("model."): v for k, v in saved_identity.items() if k.startswith("model.")}
        saved = ModelConfig.from_dict({**now.to_dict(), **saved})  # settings added later keep their defaults
        return cls(saved, now, special, seed) if growth(saved, now) else None

    def sources(self, names) -> dict[str, tuple[str, bool]]:
        """{grown parameter: (the saved parameter it starts from, whether it belongs to a new layer)}; `names`:
        the parameter names of either model (they differ only in how many layers there are)."""
        per_layer = [match[2] for match in map(_LAYER.match, names) if match and match[1] == "0"]
        out = {name: (name, False) for name in names if not _LAYER.match(name)}
        for k, (i, copy) in enumerate(layer_sources(self.saved.num_layers, self.now.num_layers)):
            for suffix in per_layer:
                out[f"model.layers.{k}.{suffix}"] = (f"model.layers.{i}.{suffix}", copy)
        return out

    def parts(self, sources: dict[str, tuple[str, bool]], previous=()) -> list[list]:
        """[parameter, dim, start] for each part of the grown model the checkpoint did not have (a new layer's
        tensors whole, a widened MLP's new rows or columns), with the `previous` growths' parts renamed to the
        layers they moved to."""
        moved = {source: name for name, (source, copy) in sources.items() if not copy}
        parts = {(moved[name], dim, start) for name, dim, start in previous}
        for name, (_, copy) in sources.items():
            if copy:
                parts.add((name, 0, 0))
            elif self.now.intermediate_size > self.saved.intermediate_size and name.endswith((*MLP_ROWS, MLP_COLUMNS)):
                parts.add((name, 1 if name.endswith(MLP_COLUMNS) else 0, self.saved.intermediate_size))
        whole = {name for name, dim, start in parts if start == 0}
        return sorted([name, dim, start] for name, dim, start in parts if start == 0 or name not in whole)

    def widen(self, name: str, tensor: torch.Tensor, fill: Callable[[tuple], torch.Tensor]) -> torch.Tensor:
        """`tensor` (a saved parameter or its Adam moment) at the grown MLP width; `fill` makes the new part."""
        extra = self.now.intermediate_size - self.saved.intermediate_size
        if not extra or tensor.dim() != 2:
            return tensor
        if name.endswith(MLP_ROWS):
            return torch.cat([tensor, fill((extra, tensor.shape[1])).to(tensor.dtype)], 0)
        if name.endswith(MLP_COLUMNS):  # new columns, zero
            return torch.cat([tensor, torch.zeros(tensor.shape[0], extra, dtype=tensor.dtype)], 1)
        return tensor

    def weights(self, saved: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The grown model's state dict from the saved one: it computes the same function. New MLP rows are drawn
        at the spread of their tensor's trained rows (a trained model's weights are ~15x a fresh one's: rows drawn
        like a fresh model's would hardly take part)."""
        generator = torch.Generator().manual_seed(self.seed)
        out = {}
        for name, (source, copy) in self.sources(saved).items():
            spread = float(saved[source].std())
            tensor = self.widen(source, saved[source].clone(),
                                lambda shape, spread=spread: torch.randn(shape, generator=generator) * spread)
            out[name] = torch.zeros_like(tensor) if copy and source.endswith(OUTPUTS) else tensor
        return out

    def optimizer_state(self, saved: dict, sources: dict[str, tuple[str, bool]], model, optimizer) -> dict:
        """The optimizer state dict for the grown model: each old parameter's moments, padded where widened."""
        from transformers import LlamaForCausalLM

        with torch.device("meta"):  # the saved model's parameter order, without allocating it
            old_model = LlamaForCausalLM(llama_config(self.saved, self.special))
        old_names = [name for group in parameter_groups(old_model) for name in group]
        by_name = {old_names[index]: state for index, state in saved["state"].items()}
        state = {}
        for index, name in enumerate(name for group in parameter_groups(model) for name in group):
            source, copy = sources[name]
            if copy or source not in by_name:  # a new layer starts its own moments
                continue
            state[index] = {key: self.widen(source, value, torch.zeros) if torch.is_tensor(value) else value
                            for key, value in by_name[source].items()}
        grown = optimizer.state_dict()["param_groups"]  # the grown model's parameter indices
        return {"state": state, "param_groups": [{**old, "params": new["params"]}
                                                 for old, new in zip(saved["param_groups"], grown)]}

    def load(self, folder: Path, model, optimizer) -> dict:
        """Load the checkpoint's weights into the grown `model`; return its optimizer state for the grown model."""
        from safetensors.torch import load_file

        saved = load_file(str(Path(folder) / "model.safetensors"))
        sources = self.sources(saved)
        result = model.load_state_dict(self.weights(saved), strict=False)
        tied = {"lm_head.weight"} if self.now.tie_embeddings else set()  # saved once, as the input embedding
        if result.unexpected_keys or set(result.missing_keys) - tied:
            raise LaamError(f"{folder}: its weights do not fit the grown model (missing {result.missing_keys}, "
                            f"unexpected {result.unexpected_keys})")
        return self.optimizer_state(torch.load(Path(folder) / "optimizer.pt", weights_only=True), sources, model,
                                    optimizer)


class GrownLR:
    """Trains the grown parts of a model at `scale` times the LR.

    AdamW's update of a coordinate does not depend on its gradient's scale, and a parameter group cannot hold some
    rows of a tensor (a widened MLP's), so the update of those coordinates is multiplied after each step: with
    `before()` ahead of `optimizer.step()` and `after()` behind it, they move exactly as at `scale` times the LR."""

    def __init__(self, model, parts: list[list], scale: float):
        params = dict(model.named_parameters())
        self.scale = scale
        self.views = [params[name].data.narrow(dim, start, params[name].shape[dim] - start)
                      for name, dim, start in parts]
        self.saved: list[torch.Tensor] = []

    def before(self) -> None:
        self.saved = [view.clone() for view in self.views]

    def after(self) -> None:
        for view, old in zip(self.views, self.saved):
            view.add_(view - old, alpha=self.scale - 1)
        self.saved = []
