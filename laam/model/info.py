"""`laam.json` in a model folder: which corpus a model was trained on and how it reads long files.

Every later stage (generate, audit, card, compress) needs these facts; `save_pretrained` keeps
the weights, tokenizer and generation settings beside it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from laam.data.corpus import Corpus, CorpusConfig, load_corpus
from laam.data.tokenizer import tokenizer_sha256
from laam.errors import LaamError
from laam.io import atomic_write_text
from laam.validation import validate
from laam.windows import WindowPolicy

INFO_FILE = "laam.json"


@dataclass
class ModelInfo:
    corpus: dict  # CorpusConfig.to_dict()
    corpus_name: str
    corpus_fingerprint: str
    context: int  # the most tokens the model reads (see laam.windows)
    stride: int  # tokens dropped when the window slides
    training: dict = field(default_factory=dict)  # recipe, steps, tokens seen, wall time, command …
    tokenizer_sha256: str | None = None  # tokenizer.json's, when saved (model.folder checks the folder against it)
    # path -> encoding of every training file that is not UTF-8 (read as Latin-1): how a decoder writes its bytes
    # without the corpus (None: a laam.json written before it was recorded)
    encodings: dict[str, str] | None = None
    # the weights' dtype as shipped and how it was chosen (`laam ship`; the evidence is in ship.json); None: the
    # float32 weights training saved
    weights: dict | None = None

    def encoding(self, path: str) -> str | None:
        """The encoding a regenerated file's text is written in ("utf-8" unless recorded; None: not recorded)."""
        return None if self.encodings is None else self.encodings.get(path, "utf-8")

    def __post_init__(self):
        validate(self, "laam.json")
        self.policy  # noqa: B018 - context and stride must make a window rule (WindowPolicy checks them)

    @property
    def policy(self) -> WindowPolicy:
        return WindowPolicy(self.context, self.stride)

    def corpus_config(self, cache: Path | None = None) -> CorpusConfig:
        return CorpusConfig.from_dict(self.corpus, cache=cache)


def write_model_info(folder: Path, corpus: Corpus, policy: WindowPolicy, training: dict | None = None) -> Path:
    """laam.json, written after the tokenizer (whose SHA-256 it records, when the folder holds one)."""
    tokenizer = Path(folder) / "tokenizer.json"
    info = ModelInfo(corpus.config.to_dict(), corpus.name, corpus.fingerprint(), policy.context, policy.stride,
                     training or {}, tokenizer_sha256(folder) if tokenizer.is_file() else None,
                     {f.path: f.encoding for f in corpus.files if f.encoding != "utf-8"})
    return atomic_write_text(Path(folder) / INFO_FILE, json.dumps(asdict(info), indent=1) + "\n")


def read_model_info(folder: Path) -> ModelInfo:
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise LaamError(f"{folder} is not a LaaM model folder (no {INFO_FILE}); train one with `laam train`")
    try:
        return ModelInfo(**json.loads(path.read_text()))
    except (ValueError, TypeError, LaamError) as error:
        raise LaamError(f"{path} is unreadable or not a LaaM model's laam.json: {error}") from error


def load_training_corpus(info: ModelInfo, cache: Path | None = None, progress: bool = False) -> Corpus:
    """The exact corpus a model was trained on, re-read from its source; a different one is an error."""
    corpus = load_corpus(info.corpus_config(cache), progress=progress)
    if corpus.fingerprint() != info.corpus_fingerprint:
        raise LaamError(f"the corpus read now ({corpus.name}, fingerprint {corpus.fingerprint()}) is not the one the "
                        f"model was trained on (fingerprint {info.corpus_fingerprint}): its source changed")
    return corpus
