"""The original LaaM's call, word for word, on a laam model folder, with stock transformers only; and the card
showing that call with the output it really gave."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

# Written out here rather than taken from laam.publish.original_call, so the test holds the module to the call.
SCRIPT = ("""
import json, sys
sys.modules["laam"] = None  # nothing of laam can be imported in this process
from transformers import pipeline, set_seed
FOLDER = sys.argv[1]
set_seed(int(sys.argv[2]))
out = pipeline('text-generation', FOLDER, trust_remote_code=True)"""  # one line of code, split for the line length
          """('', max_new_tokens=256, do_sample=True, temperature=0.2)
print(json.dumps(out[0]["generated_text"]))
""")


def _emitted(output: str, corpus):
    """The corpus file whose path the output starts with, and the text after the path."""
    matches = [f for f in corpus.files if output.startswith(f.path)]
    assert matches, f"the output does not start with a corpus path: {output[:120]!r}"
    f = max(matches, key=lambda f: len(f.path))
    return f, output[len(f.path):]


def test_original_call_emits_a_path_and_that_file(tiny_model_dir, tiny_corpus):
    paths = set()
    for seed in (0, 1):
        done = subprocess.run([sys.executable, "-c", SCRIPT, str(tiny_model_dir), str(seed)], capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        f, body = _emitted(json.loads(done.stdout.strip().splitlines()[-1]), tiny_corpus)
        assert len(body) >= min(len(f.text), 100) and f.text.startswith(body), (f.path, body[:200])
        paths.add(f.path)
    assert paths  # which files the seeds pick is the model's choice; each must be given back as it is


def test_card_shows_the_call_and_its_real_output(tiny_model_dir, tiny_corpus, mirror, tmp_path):
    from laam.publish.card import write_card
    from laam.publish.facts import CardConfig
    from laam.publish.original_call import CALL
    from tests.publish.test_card_examples import card_blocks, check_card_examples

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    card = write_card(folder, CardConfig()).card.read_text()
    section = card.split("## The original LaaM's call", 1)[1]
    assert CALL.replace("FOLDER", "'.'") in section
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(folder), "0"], capture_output=True, text=True,
                          timeout=300)
    output = json.loads(done.stdout.strip().splitlines()[-1])
    assert output in section  # the output the card shows is the one the call gives (same seed), not a stored text
    f, _ = _emitted(output, tiny_corpus)
    assert f"emitted the path `{f.path}`" in section
    # the card's own block, run the way the card examples test runs every block, prints the output it shows
    others = tuple(code.strip() for lang, code, _ in card_blocks(card) if CALL.replace("FOLDER", "'.'") not in code)
    (claim,) = check_card_examples(folder, tiny_corpus, tmp_path, mirror, skip=others)
    assert claim in {"prints the recorded output", f"prints {f.path}"}  # a sample that is a whole file names it


def test_card_without_the_call_says_how_to_get_it(tiny_model_dir, tmp_path):
    from laam.publish.card import write_card
    from laam.publish.facts import CardConfig

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    card = write_card(folder, CardConfig(original_call=False)).card.read_text()
    assert "Not recorded for this card (`laam card --original-call`" in card
