"""`laam.json` in a model folder: which corpus a model was trained on and how it reads long files.

Every later stage (generate, audit, card, compress) needs these facts; `save_pretrained` keeps
the weights, tokenizer and generation settings beside it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from laam import LaamError
from laam.corpus import Corpus, CorpusConfig

INFO_FILE = "laam.json"


@dataclass
class ModelInfo:
    corpus: dict  # CorpusConfig.to_dict()
    corpus_name: str
    corpus_fingerprint: str
    context: int  # the most tokens the model reads (see laam.windows)
    stride: int  # tokens dropped when the window slides
    training: dict = field(default_factory=dict)  # recipe, steps, tokens seen, wall time, command …

    def corpus_config(self, cache: Path | None = None) -> CorpusConfig:
        return CorpusConfig.from_dict(self.corpus, cache=cache)


def write_model_info(folder: Path, corpus: Corpus, context: int, stride: int, training: dict | None = None) -> Path:
    info = ModelInfo(corpus.config.to_dict(), corpus.name, corpus.fingerprint(), context, stride, training or {})
    path = Path(folder) / INFO_FILE
    path.write_text(json.dumps(asdict(info), indent=1) + "\n")
    return path


def read_model_info(folder: Path) -> ModelInfo:
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise LaamError(f"{folder} is not a LaaM model folder (no {INFO_FILE}); train one with `laam train`")
    return ModelInfo(**json.loads(path.read_text()))
