"""The stock decoders a reader runs, from the bare path, in the audit's own run: what users run is what is audited.

laam's engine regenerates each file from the path prompt with `<|end_header|>` already given; a reader runs stock
transformers with the folder's `custom_generate/generate.py` (`pipeline("text-generation", MODEL,
trust_remote_code=True)(PATH)`), or the GGUF with the `regenerate_gguf.py` written beside it. Each runs here in a
fresh Python process that cannot import laam (`sys.modules["laam"] = None`), from the model folder's files only,
and writes each file's bytes in the encoding the folder records (laam.json's `encodings`: the manifest's, e.g.
Latin-1 for `defkeymap.map`; the GGUF's `laam.encodings`). The bytes are compared here with the corpus's.

Stock decoding has no drafts: every token costs a forward pass, so a whole kernel takes hours on a CPU. The
default is therefore a sample: `sample` files drawn with a fixed seed, plus every file whose path another path
extends and every file that is not UTF-8 (the files stock decoding gets wrong first); audit.json and the card name
it as a sample. `sample=None` decodes every audited file.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from laam.data.corpus import CorpusFile
from laam.data.records import prefix_paths
from laam.io import sha256_file

SEED = 0
TRANSFORMERS_CALL = 'pipeline("text-generation", MODEL, trust_remote_code=True)(PATH, return_full_text=False)'
GGUF_CALL = "python regenerate_gguf.py MODEL.gguf PATH"
GGUF_SCRIPT = "regenerate_gguf.py"
# A stock interpreter's script: laam cannot be imported; the folder's own files decide every byte.
TRANSFORMERS_SCRIPT = r'''
import json, sys
sys.modules["laam"] = None
import torch
from transformers import pipeline

folder, out, paths, threads = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), int(sys.argv[4])
if threads:
    torch.set_num_threads(threads)
encodings = json.load(open(f"{folder}/laam.json")).get("encodings") or {}  # the files that are not UTF-8
generate = pipeline("text-generation", folder, trust_remote_code=True)
for i, path in enumerate(paths):
    text = generate(path, return_full_text=False)[0]["generated_text"]
    encoding = encodings.get(path, "utf-8")
    try:
        data = text.encode(encoding, "surrogateescape" if encoding == "utf-8" else "strict")
    except UnicodeEncodeError:  # text the file's encoding cannot hold (a file not memorized): as UTF-8
        data = text.encode("utf-8", "surrogateescape")
    open(f"{out}/{i}", "wb").write(data)
print(json.dumps(sorted(m for m, v in sys.modules.items() if m.split(".")[0] == "laam" and v is not None)))
'''
# regenerate_gguf.py run as a reader runs it, in an interpreter where laam cannot be imported
GGUF_RUNNER = ("import runpy, sys; sys.modules['laam'] = None; sys.argv = sys.argv[1:]; "
               "runpy.run_path(sys.argv[0], run_name='__main__')")


@dataclass
class DecoderResult:
    """One decoder's regeneration of the chosen files: how many came back byte for byte, and which did not."""

    decoder: str  # "laam", "transformers", "gguf MODEL.gguf"
    call: str  # what a reader runs
    files: int
    exact: int
    failed: list[str] = field(default_factory=list)  # paths whose bytes differ (or that were not written)
    selection: dict = field(default_factory=dict)  # which files: all audited, or a named sample
    seconds: float | None = None
    not_run: str | None = None  # why the decoder did not run (then files = exact = 0)
    sha256: str | None = None  # of the file it decoded from, when that file is not bound (a GGUF)

    def to_dict(self) -> dict:
        return asdict(self)


def choose_files(files: list[CorpusFile], sample: int | None, all_paths: list[str]) -> tuple[list[CorpusFile], dict]:
    """The files the stock decoders regenerate, and audit.json's description of them: every audited file (sample
    None or negative, or a sample at least as large), else `sample` drawn with SEED plus each file whose path
    another training path extends (all_paths) and each file that is not UTF-8."""
    if sample is None or sample < 0 or sample >= len(files):
        return list(files), {"kind": "all", "files": len(files)}
    prefixes = prefix_paths(all_paths)
    forced = [f for f in files if f.path in prefixes or f.encoding != "utf-8"]
    rest = [f for f in files if not (f.path in prefixes or f.encoding != "utf-8")]
    drawn = random.Random(SEED).sample(rest, min(sample, len(rest)))
    chosen = sorted(forced + drawn, key=lambda f: f.path)
    return chosen, {"kind": "sample", "files": len(chosen), "of": len(files), "drawn": len(drawn), "seed": SEED,
                    "added": [f.path for f in forced], "paths": [f.path for f in chosen],
                    "rule": f"{len(drawn)} files drawn at random (seed {SEED}), plus every file whose path another "
                            "path extends and every file that is not UTF-8"}


def _compare(decoder: str, call: str, files: list[CorpusFile], outputs: dict[str, bytes | None], selection: dict,
             seconds: float) -> DecoderResult:
    def exact(f: CorpusFile) -> bool:
        data = outputs.get(f.path)
        return data is not None and hashlib.sha256(data).hexdigest() == (f.sha256 or hashlib.sha256(f.data).hexdigest())

    failed = [f.path for f in files if not exact(f)]
    return DecoderResult(decoder, call, len(files), len(files) - len(failed), failed, selection, round(seconds, 2))


def _stock_env(workdir: Path) -> dict[str, str]:
    """The reader's environment: no laam on the path, no network, transformers' remote-code cache of its own."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(workdir / "hf-modules"), HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def _run(command: list[str], workdir: Path, what: str, timeout: float) -> subprocess.CompletedProcess | str:
    try:
        done = subprocess.run(command, cwd=workdir, env=_stock_env(workdir), capture_output=True, text=True,
                              timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"{what} did not finish in {timeout:.0f} s"
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"{what} failed: {last}"
    return done


def run_transformers(folder: Path, files: list[CorpusFile], selection: dict, threads: int | None = None,
                     timeout: float = 24 * 3600) -> DecoderResult:
    """Stock transformers with the folder's custom_generate, from each bare path, laam not importable."""
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="laam-stock-") as scratch:
        work = Path(scratch)
        (work / "stock.py").write_text(TRANSFORMERS_SCRIPT)
        (work / "paths.json").write_text(json.dumps([f.path for f in files]))
        (work / "out").mkdir()
        done = _run([sys.executable, "-I", str(work / "stock.py"), str(Path(folder).resolve()), str(work / "out"),
                     str(work / "paths.json"), str(threads or 0)], work, "stock transformers", timeout)
        if isinstance(done, str):
            return DecoderResult("transformers", TRANSFORMERS_CALL, 0, 0, selection=selection, not_run=done)
        imported = json.loads(done.stdout.strip().splitlines()[-1])
        if imported:
            return DecoderResult("transformers", TRANSFORMERS_CALL, 0, 0, selection=selection,
                                 not_run=f"the stock process imported laam ({imported[0]})")
        outputs = {f.path: (work / "out" / str(i)).read_bytes() if (work / "out" / str(i)).is_file() else None
                   for i, f in enumerate(files)}
    return _compare("transformers", TRANSFORMERS_CALL, files, outputs, selection, time.perf_counter() - began)


def run_gguf(gguf: Path, files: list[CorpusFile], selection: dict, threads: int | None = None,
             timeout: float = 24 * 3600) -> DecoderResult:
    """The GGUF through the regenerate_gguf.py beside it, from each bare path, laam not importable."""
    decoder, call = f"gguf {gguf.name}", GGUF_CALL.replace("MODEL.gguf", gguf.name)
    script = gguf.parent / GGUF_SCRIPT
    if not script.is_file():
        return DecoderResult(decoder, call, 0, 0, selection=selection, not_run=f"no {GGUF_SCRIPT} beside {gguf.name}")
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="laam-stock-") as scratch:
        work = Path(scratch)
        command = [sys.executable, "-I", "-c", GGUF_RUNNER, str(script.resolve()), str(gguf.resolve()),
                   *[f.path for f in files], "--out", str(work / "out")]
        command += ["--threads", str(threads)] if threads else []
        done = _run(command, work, f"{GGUF_SCRIPT} on {gguf.name}", timeout)
        if isinstance(done, str):
            if "No module named 'llama_cpp'" in done:
                done = "llama-cpp-python is not installed (pip install 'laam[gguf]')"
            return DecoderResult(decoder, call, 0, 0, selection=selection, not_run=done)
        outputs = {f.path: (work / "out" / f.path).read_bytes() if (work / "out" / f.path).is_file() else None
                   for f in files}
    result = _compare(decoder, call, files, outputs, selection, time.perf_counter() - began)
    result.sha256 = sha256_file(gguf)
    return result


def selection_text(selection: dict) -> str:
    """Which files a decoder ran on, in words: every audited file, or a sample named as a sample with its rule."""
    if selection.get("kind") == "sample":
        return f"a sample of {selection['files']} of {selection['of']} audited files: {selection['rule']}"
    return f"all {selection.get('files', 0)} audited files"


def failed_text(failed: list[str], shown: int = 5) -> str:
    """The files a decoder did not give back exactly: the first `shown`, then how many more."""
    more = f" and {len(failed) - shown} more" if len(failed) > shown else ""
    return ", ".join(failed[:shown]) + more


def decoder_line(d: dict) -> str:
    """One decoder of audit.json's `decoders` in one line: files exact of those it ran on, which files (a sample
    named as one), the files not exact, or why it did not run."""
    if d.get("not_run"):
        return f"{d['decoder']}: not run ({d['not_run']})"
    failed = d.get("failed") or []
    return (f"{d['decoder']}: {d['exact']} of {d['files']} files byte for byte ({selection_text(d['selection'])})"
            + (f"; not exact: {failed_text(failed)}" if failed else ""))


def laam_result(rows: list[dict]) -> DecoderResult:
    """laam's own engine, from the audit's rows (every audited file, `verbatim` = its bytes' SHA-256 match)."""
    failed = [r["path"] for r in rows if not r["verbatim"]]
    return DecoderResult("laam", "laam generate --model MODEL --path PATH", len(rows), len(rows) - len(failed),
                         failed, {"kind": "all", "files": len(rows)})


def stock_decoders(folder: Path, files: list[CorpusFile], all_paths: list[str], sample: int | None,
                   threads: int | None = None) -> list[DecoderResult]:
    """Every stock decoder the folder ships for: transformers (with its custom_generate), and each GGUF in it."""
    chosen, selection = choose_files(files, sample, all_paths)
    results = [run_transformers(folder, chosen, selection, threads)]
    results += [run_gguf(gguf, chosen, selection, threads) for gguf in sorted(Path(folder).glob("*.gguf"))]
    return results
