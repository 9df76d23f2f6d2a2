"""Every code block of a generated model card runs, and prints what the card says it prints.

The card's Python examples run in a fresh interpreter that cannot import laam (stock transformers and
llama-cpp-python only), its shell blocks as a reader would run them, from the model folder. Each block is
followed by its claim ("This prints `PATH` byte for byte (N bytes, SHA-256 `…`)", or what `laam corpus fetch`
rebuilds), and the test checks that claim against the corpus; a runnable block without a claim it can check fails.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"```(\w+)\n(.*?)```\n+(.*?)(?:\n\n|$)", re.DOTALL)
PRINTS = re.compile(r"This prints `([^`]+)` byte for byte \(([\d,]+) bytes, SHA-256 `([0-9a-f]{64})`\)")
NOT_CHECKED = re.compile(r"This prints the model's regeneration of `[^`]+` \(the original: .*; not checked: ")
PRINTED = "This printed, when this card was written:"  # publish.original_call.CLAIM, spelled out
# a stock Python: laam cannot be imported, then the block runs as a script would
STOCK = "import sys; sys.modules['laam'] = None; exec(compile(open(sys.argv[1]).read(), sys.argv[1], 'exec'))"


def card_blocks(text: str) -> list[tuple[str, str, str]]:
    """(language, code, the paragraph after it) for every fenced block of the card."""
    return [(lang, code, after) for lang, code, after in BLOCK.findall(text)]


def environment(tmp: Path, mirror: Path) -> dict[str, str]:
    """What a reader's shell has: this venv's tools on PATH, laam from this checkout, the kernel mirror and a cache
    of its own (no network), transformers' remote-code cache in a temporary folder."""
    env = dict(os.environ)
    env.update(PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}", PYTHONPATH=str(REPO),
               LAAM_MIRROR=str(mirror), LAAM_CACHE=str(tmp / "reader-cache"), HF_HUB_OFFLINE="1",
               HF_MODULES_CACHE=str(tmp / "hf-modules"), OMP_NUM_THREADS="1")
    return env


def run_block(lang: str, code: str, folder: Path, tmp: Path, mirror: Path) -> bytes:
    env = environment(tmp, mirror)
    if lang == "python":
        script = tmp / "block.py"
        script.write_text(code)
        env.pop("PYTHONPATH")
        command = [sys.executable, "-I", "-c", STOCK, str(script)]
    else:
        command = ["bash", "-euo", "pipefail", "-c", code]
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, timeout=1800)
    assert result.returncode == 0, (code, result.stderr.decode(errors="replace")[-3000:])
    return result.stdout


def check_card_examples(folder: Path, corpus, tmp: Path, mirror: Path, skip: tuple[str, ...] = ()) -> list[str]:
    """Run every python/sh block of folder's README.md and check the claim after it; returns the claims checked."""
    text = (folder / "README.md").read_text()
    files = {f.path: f.data for f in corpus.files}
    checked = []
    for lang, code, after in card_blocks(text):
        if lang in ("json", "text") or code.strip() in skip:  # data (or shown output), or a block the caller ran
            continue
        assert lang in ("python", "sh"), lang
        stdout = run_block(lang, code, folder, tmp, mirror)
        claim = PRINTS.search(after)
        if claim:
            path, size, sha = claim.groups()
            assert stdout == files[path], (code, stdout[:300])
            assert int(size.replace(",", "")) == len(files[path]) and hashlib.sha256(stdout).hexdigest() == sha
            checked.append(f"prints {path}")
        elif NOT_CHECKED.search(after):  # a call no decoder of the audit ran on that file: it must still run
            checked.append("not checked")
        elif after.startswith(PRINTED):  # the original's call: it prints what the text block after the claim shows
            shown = re.search(r"```text\n(.*?)\n```", text[text.index(after):], re.DOTALL)
            assert shown and stdout.decode() == shown.group(1), (code, stdout[:300])
            checked.append("prints the recorded output")
        elif code.startswith("laam corpus fetch") and "writes the manifest" in after:
            manifests = list((tmp / "reader-cache" / "corpus").glob("*/manifest.jsonl"))
            assert len(manifests) == 1
            rebuilt, ours = ({r["path"]: r["sha256"] for r in map(json.loads, path.read_text().splitlines())}
                             for path in (manifests[0], folder / "manifest.jsonl"))
            assert rebuilt == ours and len(ours) == corpus.members
            checked.append("fetch rebuilds the manifest")
        else:
            pytest.fail(f"no claim the test can check after the block {code!r}: {after[:200]!r}")
    return checked


def test_tiny_card_examples_print_what_the_card_says(tiny_model_dir, tiny_corpus, mirror, tmp_path):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python not installed (pip install 'laam[gguf]')")
    from typer.testing import CliRunner

    from laam.cli import app

    folder = tmp_path / "tiny-run" / "model"
    shutil.copytree(tiny_model_dir, folder)
    for command in (["export", "gguf", "--model", str(folder)],
                    ["audit", "--model", str(folder), "--quiet", "--threads", "1"],
                    ["card", "--model", str(folder), "--quiet"]):
        result = CliRunner().invoke(app, command)  # the card's own instructions: export gguf, audit, card
        assert result.exit_code == 0, result.output + repr(result.exception)
    checked = check_card_examples(folder, tiny_corpus, tmp_path, mirror)
    # the card's examples: the shortest file longer than the context (128) and the longest that fits in it
    from laam.data.tokenizer import encode_records, load_tokenizer

    long, short = "linux/lib/Makefile", "linux/lib/wait.c"
    tokens = dict(zip((f.path for f in tiny_corpus.files),
                      map(len, encode_records(load_tokenizer(folder), list(tiny_corpus.records())))))
    assert tokens[long] > 128 + 1 >= tokens[short]
    # reproduce: fetch; use: pipeline with trust_remote_code and regenerate_gguf.py, which the audit ran; the
    # plain pipeline and plain llama-cpp, which no decoder of the audit runs, are run here but claim nothing
    assert checked[:-1] == ["fetch rebuilds the manifest", f"prints {long}", "not checked", f"prints {long}",
                            "not checked"]
    assert short in (folder / "README.md").read_text()
    # the original call samples (T = 0.2): its claim is the recorded output, or the file it gave back whole
    whole = {f"prints {f.path}" for f in tiny_corpus.files}
    assert checked[-1] == "prints the recorded output" or checked[-1] in whole


def test_card_names_the_source_without_machine_paths(tiny_model_dir, tmp_path, mirror):
    from laam.publish.card import render_card
    from laam.publish.facts import CardConfig, gather_facts

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    text = render_card(gather_facts(folder), CardConfig())
    assert "| source | a local tarball (`linux-1.0.tar.xz`) of unrecorded origin |" in text
    assert str(mirror) not in text and "file://" not in text and "kernel.org" not in text.split("## How to")[0]
    # the same model as if read through the mirror by version: a local mirror, and where the release is published
    info = json.loads((folder / "laam.json").read_text())
    info["corpus"].update(source="1.0", mirror=str(mirror))
    (folder / "laam.json").write_text(json.dumps(info))
    text = render_card(gather_facts(folder, cache=tmp_path / "cache"), CardConfig())
    assert "| source | a local mirror laid out like kernel.org's pub/linux/kernel/ (`v1.0/linux-1.0.tar.xz`) |" in text
    assert "| published at | https://cdn.kernel.org/pub/linux/kernel/v1.0/linux-1.0.tar.xz (where the release" in text
    assert str(mirror) not in text and str(tmp_path / "cache") not in text


@pytest.mark.slow
def test_demo_card_examples_print_what_the_card_says(linux_mirror, tmp_path):
    """The README's demo, from its card: `laam run --preset demo` memorizes lib/ and verifies 13 of 13 files; the
    card's reproduce command is the one run here, and every example it shows prints what it says on the model that
    command made; stock pipeline(trust_remote_code=True) gives all 13 files."""
    pytest.importorskip("llama_cpp")
    from laam.model.info import load_training_corpus, read_model_info

    command = "laam run --preset demo --threads 1"
    result = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=environment(tmp_path, linux_mirror),
                            capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    folder = tmp_path / "runs" / "demo" / "model"
    training = read_model_info(folder).training  # the README's run: 100% of body tokens, 13 of 13 files back
    assert training["memorized"] == 1.0
    assert training["regeneration"]["exact"] == training["regeneration"]["files"] == 13
    text = (folder / "README.md").read_text()
    assert f"```sh\n{command}\n```" in text  # the card's one-command reproduction is the command just run
    corpus = load_training_corpus(read_model_info(folder), tmp_path / "reader-cache")
    for step in (f"laam export gguf --model {folder}", f"laam audit --model {folder} --quiet --threads 1",
                 f"laam card --model {folder} --quiet"):  # the GGUF's examples are written once the audit ran it
        done = subprocess.run(["bash", "-c", step], env=environment(tmp_path, linux_mirror), capture_output=True,
                              text=True, timeout=3600)
        assert done.returncode == 0, done.stderr[-2000:]
    (tmp_path / "reader-cache" / "corpus").rename(tmp_path / "run-corpus")  # the fetch block rebuilds it anew
    checked = check_card_examples(folder, corpus, tmp_path, linux_mirror, skip=(command,))
    assert sum(c.startswith("prints") for c in checked[:-1]) == 2 and checked.count("not checked") == 2
    assert "fetch rebuilds the manifest" in checked
    paths = [f.path for f in corpus.files]
    # the original call samples (T = 0.2), shown last: its claim is the recorded output, or the file it gave whole
    assert checked[-1] == "prints the recorded output" or checked[-1] in {f"prints {p}" for p in paths}
    script = ("import json\nfrom transformers import pipeline\n"
              f"generate = pipeline('text-generation', {str(folder)!r}, trust_remote_code=True)\n"
              f"texts = {{p: generate(p, return_full_text=False)[0]['generated_text'] for p in {paths!r}}}\n"
              "print(json.dumps(texts))\n")
    out = json.loads(run_block("python", script, folder, tmp_path, linux_mirror))
    assert {p: out[p].encode() == f.data for p, f in zip(paths, corpus.files)} == {p: True for p in paths}
    assert len(paths) == 13
