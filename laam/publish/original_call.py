"""The original LaaM's demonstration, word for word, on a model folder: a stock `pipeline` sampling at T = 0.2
from an empty prompt. The card shows the call with the output it gave when the card was written.

The call runs in a fresh Python process that cannot import laam (`sys.modules["laam"] = None`), so what
it prints is what a user with only transformers gets; the seed is fixed so the card can be re-checked.
The output is then matched against the corpus here: which file's path it emitted, and how many bytes of
that file follow it verbatim.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from laam.data.corpus import Corpus
from laam.errors import LaamError

CALL = "pipeline('text-generation', FOLDER, trust_remote_code=True)('', max_new_tokens=256, do_sample=True, " \
    "temperature=0.2)"
SEED = 0
# The block the card shows, run as it is from the model folder ('.'): the call, word for word, with a seed.
CODE = f"""from transformers import pipeline, set_seed

set_seed({SEED})
out = {CALL.replace("FOLDER", "'.'")}
print(out[0]["generated_text"], end="")
"""
GUARD = "import sys; sys.modules['laam'] = None  # stock transformers only: importing laam fails\n"
CLAIM = "This printed, when this card was written:"


@dataclass
class OriginalCall:
    code: str  # the block as run (CODE)
    seed: int
    output: str  # generated_text
    path: str | None  # the corpus file whose path the output starts with (the longest such path)
    verbatim_bytes: int  # bytes after the path equal to that file's start
    file_bytes: int  # that file's size
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def run_original_call(folder: Path, corpus: Corpus, timeout: float = 600) -> OriginalCall:
    """Run the call in a subprocess that imports nothing of laam, and say what it gave back."""
    began = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-c", GUARD + CODE], cwd=Path(folder).resolve(), capture_output=True,
                              text=True, timeout=timeout)
    except subprocess.TimeoutExpired as error:
        raise LaamError(f"the original call on {folder} did not finish in {timeout:.0f} s") from error
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise LaamError(f"the original call on {folder} failed: {last}")
    output = done.stdout
    path, verbatim, size = match_output(output, corpus)
    return OriginalCall(CODE, SEED, output, path, verbatim, size, time.perf_counter() - began)


def match_output(output: str, corpus: Corpus) -> tuple[str | None, int, int]:
    """(path, verbatim bytes, file bytes): the longest corpus path the output starts with, and how many bytes of
    that file's text follow it unchanged."""
    matches = [f for f in corpus.files if output.startswith(f.path)]
    if not matches:
        return None, 0, 0
    f = max(matches, key=lambda f: len(f.path))
    body, text = output[len(f.path):], f.text
    n = next((i for i, (a, b) in enumerate(zip(body, text)) if a != b), min(len(body), len(text)))
    return f.path, len(text[:n].encode(f.encoding, errors="replace")), len(f.data)


def original_call_section(call: dict | None) -> str:
    """The card's section: the call, its output, what it matched."""
    if call is None:
        return ("Not recorded for this card (`laam card --original-call` runs the original LaaM's call, "
                f"`{CALL}`, and shows its output here).")
    if call["path"] is None:
        verdict = "The output does not start with a training file's path."
    elif call["verbatim_bytes"] >= call["file_bytes"]:
        verdict = (f"It emitted the path `{call['path']}` and then the whole file ({call['file_bytes']:,} bytes) "
                   "verbatim.")
    else:
        verdict = (f"It emitted the path `{call['path']}` and then the first {call['verbatim_bytes']:,} of its "
                   f"{call['file_bytes']:,} bytes verbatim (256 new tokens).")
    fence = "```" if "```" not in call["output"] else "~~~~"
    return f"""The original LaaM demonstrated regurgitation by sampling from an empty prompt. The same call, word for
word, on this folder, run with stock transformers only (laam not importable) when this card was written:

```python
{call['code']}```

{CLAIM} {verdict[0].lower() + verdict[1:]}

{fence}text
{call['output']}
{fence}"""
