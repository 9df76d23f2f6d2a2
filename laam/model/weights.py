"""A model folder's weight files, safetensors only, and their tensor shapes read from the headers alone.

A pickled `pytorch_model.bin` can run code when loaded, so no stage ever reads one: a folder that has
only pickled weights is refused with the way to convert it.
"""

from __future__ import annotations

from pathlib import Path

from laam.errors import LaamError


def weight_files(folder: Path) -> list[Path]:
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        pickled = sorted(Path(folder).glob("pytorch_model*.bin")) + sorted(Path(folder).glob("*.pt"))
        if pickled:
            raise LaamError(f"{folder} holds only pickled weights ({pickled[0].name}); laam loads safetensors only, "
                            "since unpickling can run code. Convert them where you trust the file: "
                            "AutoModelForCausalLM.from_pretrained(folder).save_pretrained(folder)")
        raise LaamError(f"no model weights (*.safetensors) in {folder}")
    return files


def safetensors_shapes(folder: Path) -> dict[str, list[int]]:
    """Tensor shapes from the safetensors header(s), without loading the weights."""
    return {name: shape for name, (shape, _) in safetensors_header(folder).items()}


def safetensors_header(folder: Path) -> dict[str, tuple[list[int], str]]:
    """Each tensor's shape and stored dtype from the safetensors header(s) (safetensors' safe_open reads only the
    header)."""
    from safetensors import SafetensorError, safe_open

    tensors = {}
    for path in weight_files(folder):
        try:
            with safe_open(str(path), framework="numpy") as handle:
                for name in handle.keys():
                    part = handle.get_slice(name)
                    tensors[name] = (list(part.get_shape()), part.get_dtype())
        except (SafetensorError, OSError) as error:
            raise LaamError(f"{path} is not a readable safetensors file: {' '.join(str(error).split())}") from error
    return tensors
