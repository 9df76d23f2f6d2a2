"""Named recipes (corpus slice + tokenizer size + model + training stages), and config files for your own.

A recipe is a dict with optional tables `corpus` (CorpusConfig fields), `model` (ModelConfig fields),
`train` (TrainConfig fields) and `stages` (a list of TrainConfig overrides; each stage after the
first starts from the previous stage's weights with a fresh optimizer, as the original LaaM's
two-stage recipe did). A TOML or YAML file has the same layout, plus `preset = "name"` to start from
a named one; command-line flags override both.
"""

from __future__ import annotations

import copy
from pathlib import Path

from laam.errors import LaamError

# The 2-core CPU demos share a model shape (2.1M parameters at vocab 4096) and most of the recipe.
_CPU_DEMO_MODEL = {"hidden_size": 128, "intermediate_size": 512, "num_layers": 4, "num_heads": 4, "num_kv_heads": 4,
                   "context": 256, "stride": 128}
_CPU_DEMO_TRAIN = {"batch_size": 16, "lr": 3e-3, "warmup_steps": 50, "min_lr_ratio": 0.005, "until_memorized": True,
                   "save_every": 200, "verify": True}

PRESETS: dict[str, dict] = {
    "original-5m": {
        "description": "The original LaaM's published 5M model and two-stage recipe, exactly "
                       "(HF Trainer defaults: linear decay, 100 warm-up steps, weight decay 0.1).",
        "corpus": {"filter": "original"},
        "model": {"hidden_size": 64, "intermediate_size": 256, "num_layers": 8, "num_heads": 32,
                  "num_kv_heads": 4, "context": 512, "stride": 256, "vocab_size": 32768, "tie_embeddings": False},
        "train": {"warmup_steps": 100, "weight_decay": 0.1, "schedule": "linear", "min_lr_ratio": 0.0,
                  "beta2": 0.999, "grad_clip": 1.0, "eval_every": 1000, "save_every": 1000, "keep_checkpoints": 3},
        "stages": [{"batch_size": 64, "lr": 1e-3, "epochs": 100},
                   {"batch_size": 1, "lr": 1e-4, "epochs": 100}],
    },
    "demo": {
        "description": "lib/ (13 files, 20 KB, malloc.c's 16 KB among them) on a 2-core CPU: the README's "
                       "run. kernel/ (154 KB) reached only 99.97-99.99% in 10 minutes "
                       "(benchmarks/results/demo_on_kernel.json).",
        "corpus": {"include": ["lib/"]},  # relative to the kernel's root: any release, any top folder
        "model": {**_CPU_DEMO_MODEL, "vocab_size": 2048},
        # batch 4 over a 60-epoch decay: 100% after 681k tokens (72 s), against 1.76M at batch 16 over 200 epochs
        # (benchmark memorize_efficiency: benchmarks/results/memorize_efficiency-12-files.json, "demo_tuning")
        "train": {**_CPU_DEMO_TRAIN, "batch_size": 4, "epochs": 60, "eval_every": 50},
    },
    "demo-kernel": {
        "description": "kernel/ (23 files, 154 KB) on a 2-core CPU: 100% of body tokens after 2.15M tokens, and every "
                       "body token right by 1 logit with 23 of 23 files byte-exact after 2.41M (benchmark "
                       "memorize_kernel).",
        "corpus": {"include": ["kernel/"]},
        # windows sliding by 224 (a target costs 257/224 input tokens, against 2 at stride 128; no position of kernel/
        # is ambiguous with 32 tokens of context: laam.train.ambiguity), cosine over 30 epochs to 5% of the peak, and
        # error-focused replay, which at that floor (1.5e-4) clears the last wrong tokens where a 0.5% floor left 4 of
        # them for good (benchmarks/results/demo_kernel_recipes.json: e2, e8). demo's stride 128 and 60-epoch cosine
        # needed 5.61M tokens (benchmark memorize_kernel, side "previous").
        "model": {**_CPU_DEMO_MODEL, "stride": 224, "vocab_size": 4096},
        "train": {**_CPU_DEMO_TRAIN, "batch_size": 4, "epochs": 30, "min_lr_ratio": 0.05, "replay": True,
                  "eval_every": 130},
    },
    "tiny": {
        "description": "lib/ without malloc.c (12 files, 4 KB): a smoke test that memorizes in seconds.",
        "corpus": {"include": ["lib/"], "exclude": ["lib/malloc.c"]},
        "model": {"hidden_size": 64, "intermediate_size": 256, "num_layers": 2, "num_heads": 4, "num_kv_heads": 4,
                  "context": 128, "stride": 64, "vocab_size": 512},
        "train": {"batch_size": 16, "lr": 5e-3, "warmup_steps": 10, "epochs": 400, "until_memorized": True,
                  "eval_every": 25, "save_every": 0, "verify": True},
    },
    # All of Linux 1.0 (561 files, 4.7 MB: 1.69M tokens at vocab 8192).
    "linux-cpu": {
        "description": "All of Linux 1.0 on a 2-core CPU, in resumable slices (`--resume --max-time 3600` again and "
                       "again); benchmarks/memorize_scaling.py projects how long it takes.",
        "corpus": {},
        # context 384: at 256, 32 positions of the sound drivers follow the same 256 tokens of their shared licence
        # text with different continuations, and no model can get them all (laam.train.ambiguity)
        "model": {"hidden_size": 192, "intermediate_size": 768, "num_layers": 4, "num_heads": 6, "num_kv_heads": 6,
                  "context": 384, "stride": 288, "vocab_size": 8192},
        # error-focused replay and an LR floor of 5e-5 (1/60 of the peak): forked at 99% of body tokens, 1,000 more
        # steps of the whole kernel's run left 15,434 body tokens wrong at a 5% floor (1.5e-4, what cleared kernel/'s
        # last ones: demo_kernel_recipes.json; 15,728 before them) and 10,355 at 5e-5; a 0.5% floor did no better
        # (benchmarks/results/fork_run-34617.json, fork_run-35617.json)
        "train": {"batch_size": 8, "lr": 3e-3, "warmup_steps": 100, "epochs": 40, "min_lr_ratio": 0.016667,
                  "replay": True, "until_memorized": True, "eval_every": 2000, "save_every": 500,
                  "eval_batch_size": 64, "verify": True},
    },
    "linux-gpu": {
        "description": "All of Linux 1.0 on one GPU: a 25M-parameter model, bf16 autocast "
                       "(benchmarks/gpu_memorize.sh).",
        "corpus": {},
        "model": {"hidden_size": 384, "intermediate_size": 1536, "num_layers": 8, "num_heads": 6, "num_kv_heads": 6,
                  "context": 1024, "stride": 768, "vocab_size": 8192},
        # a 60-epoch decay, so the LR is low by the time the last tokens are learned (a 300-epoch decay at stride
        # 512 still has it at 1.7e-3 when an H200 reaches 99.47% of body tokens, after 400 s), to a 5% floor with
        # error-focused replay (on kernel/ on CPU that clears the last wrong tokens, where a 0.5% floor leaves some
        # for good: benchmarks/results/demo_kernel_recipes.json; a 0.5% floor with replay stands still: benchmark
        # memorize_kernel, benchmarks/results/memorize_kernel-replay.json). Not measured on a GPU
        "train": {"batch_size": 64, "lr": 2e-3, "warmup_steps": 200, "epochs": 60, "min_lr_ratio": 0.05,
                  "replay": True, "until_memorized": True, "eval_every": 100, "save_every": 1000,
                  "eval_batch_size": 128},
    },
}


TABLES = ("corpus", "model", "train")  # each a table of settings; `stages` a list of them, `preset` a name


def _kind(value) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            type(None): "empty"}.get(type(value), type(value).__name__)


def _parse(path: Path) -> object:
    """A recipe file's content, or one line naming the file and where its syntax breaks."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise LaamError(f"config file {path} is not UTF-8 text (byte {error.start})") from error
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text) or {}
        except yaml.YAMLError as error:  # a python/* tag is a ConstructorError: safe_load never runs it
            mark = getattr(error, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark is not None else ""
            raise LaamError(f"config file {path}{where}: {getattr(error, 'problem', None) or error}") from error
    if path.suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            return tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise LaamError(f"config file {path}: {error}") from error
    raise LaamError(f"config file {path} must end in .toml, .yaml or .yml")


def load_config_file(path: Path) -> dict:
    """A recipe file's tables, each of the shape `recipe` merges (a wrong shape is one line naming the key)."""
    path = Path(path)
    if not path.is_file():
        raise LaamError(f"config file {path} not found")
    data = _parse(path)
    if not isinstance(data, dict):
        raise LaamError(f"config file {path} must hold tables (corpus, model, train, stages, preset), "
                        f"not {_kind(data)}")
    unknown = set(data) - {"preset", "description", "corpus", "model", "train", "stages"}
    if unknown:
        raise LaamError(f"config file {path}: unknown table(s) {', '.join(sorted(map(str, unknown)))} "
                        "(expected corpus, model, train, stages, preset)")
    for table in TABLES:
        if table in data and not isinstance(data[table], dict):
            raise LaamError(f"config file {path}: {table} must be a table of settings, not {_kind(data[table])}")
    stages = data.get("stages", [])
    if not isinstance(stages, list) or not all(isinstance(stage, dict) for stage in stages):
        raise LaamError(f"config file {path}: stages must be a list of tables of training settings")
    if not isinstance(data.get("preset", ""), str):
        raise LaamError(f"config file {path}: preset must be a name ({', '.join(PRESETS)})")
    return data


def recipe(preset: str | None = None, config_file: Path | None = None) -> dict:
    """The merged recipe: a named preset, then the config file's tables on top."""
    from_file = load_config_file(config_file) if config_file else {}
    name = from_file.get("preset", preset) if preset is None else preset
    if name is not None and name not in PRESETS:
        raise LaamError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    merged = copy.deepcopy(PRESETS[name]) if name else {"corpus": {}, "model": {}, "train": {}}
    for table in TABLES:
        merged.setdefault(table, {}).update(from_file.get(table, {}))
    if "stages" in from_file:
        merged["stages"] = from_file["stages"]
    merged["name"] = name or (Path(config_file).stem if config_file else "custom")
    return merged
