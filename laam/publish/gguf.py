"""Export a model folder to GGUF, the file format llama.cpp (and Ollama, LM Studio …) loads.

Written with the `gguf` package (GGUFWriter, and its TensorNameMap for llama.cpp's tensor names)
as llama.cpp's own convert_hf_to_gguf.py does for `LlamaForCausalLM`: Llama architecture, q/k
projections permuted from the HF rotary layout to llama.cpp's interleaved one, and the byte-level
BPE tokenizer stored as a "gpt2" vocabulary with its merges and the GPT-2 pre-tokenizer regex.
The convert script itself is not a library (it ships only in llama.cpp's source tree), so this
module does its few steps for the one architecture LaaM trains.

LaaM's markers are control tokens, and `add_bos_token` is false: prompts carry their markers
explicitly (`<|start_file|><|start_header|>PATH<|end_header|>`), exactly as in training.

q8_0 quantizes every 2-D weight whose rows split into 32-value blocks with the `gguf` package's
numpy Q8_0 (the same code and rule as convert_hf_to_gguf.py --outtype q8_0; other weights stay f16,
norms f32), so no llama.cpp build is needed to write it.

Files longer than the model's context need LaaM's sliding window (laam.windows), which llama.cpp does
not do: the export writes `regenerate_gguf.py` (laam/publish/regenerate_gguf.py: llama-cpp-python and
the standard library only) beside the .gguf, and stores the window as `laam.context` / `laam.stride`
in the file's metadata for it to read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from laam.errors import LaamError
from laam.io import atomic_file, atomic_write_bytes
from laam.model.folder import check_model_folder

GGUF_DTYPES = ("f32", "f16", "q8_0")
REGENERATE_SCRIPT = Path(__file__).parent / "regenerate_gguf.py"  # copied beside every .gguf written


@dataclass
class GgufResult:
    path: Path
    tensors: int
    vocab_size: int
    bytes: int
    script: Path | None = None  # regenerate_gguf.py beside it


def permute_rotary(weights: np.ndarray, n_head: int) -> np.ndarray:
    """HF Llama q/k rows (each head's rotary halves split) -> llama.cpp's (pairs interleaved).

    The same reshape as llama.cpp's convert_hf_to_gguf.py LlamaModel.permute."""
    return (weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
            .swapaxes(1, 2).reshape(weights.shape))


def _rope_theta(config: dict) -> float:
    rope = config.get("rope_parameters") or config.get("rope_scaling") or {}
    kind = rope.get("rope_type", rope.get("type", "default"))
    if kind not in ("default", None):
        raise LaamError(f"rope type {kind!r} is not supported by the GGUF export (only the default rotary)")
    return float(rope.get("rope_theta", config.get("rope_theta", 10000.0)))


def vocabulary(tokenizer_json: dict, vocab_size: int) -> tuple[list[str], list[int], list[str]]:
    """(tokens by id, GGUF token types, merges "a b") from a saved byte-level BPE tokenizer.json."""
    from gguf import TokenType

    model = tokenizer_json["model"]
    if model.get("type") != "BPE":
        raise LaamError(f"tokenizer model is {model.get('type')!r}; the GGUF export needs byte-level BPE")
    by_id: dict[int, str] = {i: t for t, i in model["vocab"].items()}
    special = set()
    for added in tokenizer_json.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        if added.get("special"):
            special.add(added["id"])
    if max(by_id) >= vocab_size:
        raise LaamError(f"tokenizer has id {max(by_id)} but the model's vocabulary is {vocab_size}")
    tokens, types = [], []
    for i in range(vocab_size):
        if i not in by_id:  # rows of the embedding no token uses
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.UNUSED)
        else:
            tokens.append(by_id[i])
            types.append(TokenType.CONTROL if i in special else TokenType.NORMAL)
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    return tokens, [int(t) for t in types], merges


def _weight(data: np.ndarray, dtype: str):
    """(array, raw GGML type or None) of one float32 weight as `dtype` asks (norms and 1-D tensors stay f32)."""
    from gguf import GGMLQuantizationType, quants

    if data.ndim < 2 or dtype == "f32":
        return data, None
    if dtype == "q8_0" and data.shape[-1] % 32 == 0:  # Q8_0 blocks are 32 values of a row
        return quants.quantize(data, GGMLQuantizationType.Q8_0), GGMLQuantizationType.Q8_0
    return data.astype(np.float16), None


def export_gguf(folder: Path, out: Path | None = None, dtype: str = "f32") -> GgufResult:
    """Write `folder`'s model and tokenizer as one GGUF file (default: FOLDER/NAME.gguf), and regenerate_gguf.py
    beside it."""
    from safetensors.torch import load_file

    from laam.model.info import INFO_FILE, read_model_info
    from laam.publish.facts import model_name

    folder = Path(folder)
    if dtype not in GGUF_DTYPES:
        raise LaamError(f"unknown GGUF dtype {dtype!r}: use one of {', '.join(GGUF_DTYPES)}")
    check_model_folder(folder, require_info=False)  # refuses pickled weights and a tokenizer not the model's
    for needed in ("config.json", "tokenizer.json"):
        if not (folder / needed).is_file():
            raise LaamError(f"no {needed} in {folder}: not a LaaM model folder")
    config = json.loads((folder / "config.json").read_text())
    if config.get("model_type") != "llama":
        raise LaamError(f"model type {config.get('model_type')!r}: the GGUF export handles Llama models only")
    weights: dict[str, np.ndarray] = {}
    for path in sorted(folder.glob("*.safetensors")):
        # read through torch, as float32: numpy has no bfloat16, the dtype `laam ship` may give the weights
        weights.update({name: t.float().numpy() for name, t in load_file(str(path)).items()})
    if not weights:
        raise LaamError(f"no *.safetensors weights in {folder}")
    tokenizer_json = json.loads((folder / "tokenizer.json").read_text())
    info = read_model_info(folder) if (folder / INFO_FILE).is_file() else None
    policy = info.policy if info is not None else None  # the window, if recorded
    encodings = (info.encodings or {}) if info is not None else {}  # the files regenerate_gguf.py writes as Latin-1
    out = Path(out) if out else folder / f"{model_name(folder)}.gguf"

    script = out.parent / REGENERATE_SCRIPT.name
    try:
        with atomic_file(out) as partial:  # an interrupted export leaves no half-written .gguf behind
            # GGUFWriter opens the path itself: it writes the temporary file that atomic_file renames at the end
            count = _write_gguf(partial.name, model_name(folder), config, policy, tokenizer_json, weights, dtype,
                                encodings)
        atomic_write_bytes(script, REGENERATE_SCRIPT.read_bytes())
    except OSError as error:  # a full disk, a read-only folder: nothing half-written is left (atomic_file)
        raise LaamError(f"could not write {error.filename or out}: {error.strerror or error}") from error
    return GgufResult(out, count, config["vocab_size"], out.stat().st_size, script)


def _write_gguf(path: str, name: str, config: dict, policy, tokenizer_json: dict, weights: dict[str, np.ndarray],
                dtype: str, encodings: dict[str, str] | None = None) -> int:
    """Write the GGUF file at `path`; return how many tensors it holds."""
    import gguf

    n_head, n_kv = config["num_attention_heads"], config.get("num_key_value_heads") or config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // n_head
    layers = config["num_hidden_layers"]
    tokens, types, merges = vocabulary(tokenizer_json, config["vocab_size"])

    writer = gguf.GGUFWriter(path, gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    writer.add_name(name)
    writer.add_context_length(config.get("max_position_embeddings", 2048))
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_dimension_count(head_dim)
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(config.get("rms_norm_eps", 1e-6))
    writer.add_vocab_size(config["vocab_size"])
    writer.add_file_type({"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16,
                          "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}[dtype])
    if policy is not None:  # the sliding window regenerate_gguf.py applies
        writer.add_uint32("laam.context", policy.context)
        writer.add_uint32("laam.stride", policy.stride)
    if encodings:  # path -> encoding of the files that are not UTF-8, as JSON (regenerate_gguf.py writes their bytes)
        writer.add_string("laam.encodings", json.dumps(encodings, sort_keys=True))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")  # ByteLevel(use_regex=True): GPT-2's split regex, no prefix space
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    for key, setter in (("bos_token_id", writer.add_bos_token_id), ("eos_token_id", writer.add_eos_token_id),
                        ("pad_token_id", writer.add_pad_token_id)):
        if config.get(key) is not None:
            setter(int(config[key]))
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)

    names = gguf.TensorNameMap(gguf.MODEL_ARCH.LLAMA, layers)
    # tied embeddings: safetensors holds no lm_head, and llama.cpp reuses token_embd when there is no output tensor
    count = 0
    for hf_name, tensor in weights.items():
        if hf_name.endswith("rotary_emb.inv_freq"):
            continue
        gguf_name = names.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if gguf_name is None:
            raise LaamError(f"no llama.cpp name for tensor {hf_name}")
        data = tensor.astype(np.float32)
        if hf_name.endswith("q_proj.weight"):
            data = permute_rotary(data, n_head)
        elif hf_name.endswith("k_proj.weight"):
            data = permute_rotary(data, n_kv)
        data, raw_dtype = _weight(data, dtype)  # norms stay f32, as llama.cpp's converter keeps them
        writer.add_tensor(gguf_name, data, raw_dtype=raw_dtype)
        count += 1
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return count
