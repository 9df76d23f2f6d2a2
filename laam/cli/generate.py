"""`laam generate` and `laam extract`: what a model gives back from a path prompt, as exact bytes."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from laam.cli.app import Cache, ModelDir, Quiet, app, console, out
from laam.data.fetch import default_cache
from laam.errors import LaamError
from laam.progress import phases
from laam.validation import AT_LEAST_1, check_value

Files = Annotated[str | None, typer.Option(
    "--files", help="Only corpus paths matching this glob (`*` crosses `/`; a trailing `/` means the folder), "
    "written from the kernel's root, e.g. 'kernel/*.c'. Default: every file the model was trained on.")]
BatchSize = Annotated[int, typer.Option(help="Sequences generated at once (continuous batching, KV cache).")]
Threads = Annotated[int | None, typer.Option(help="CPU threads for torch (default: torch's choice).")]
Force = Annotated[bool, typer.Option("--force", help="Replace files under --out that hold other bytes (default: "
                                     "stop, naming the first).")]


@app.command("generate")
def generate_command(
    model_dir: ModelDir,
    path: Annotated[str | None, typer.Option(help="Regenerate this corpus path (wrapped as the header "
                                             "prompt), e.g. linux/kernel/sched.c.")] = None,
    prompt: Annotated[str | None, typer.Option(help="Continue this raw text instead (may contain the "
                                               "<|start_file|>… markers).")] = None,
    max_new_tokens: Annotated[int, typer.Option(help="Most tokens to generate (it stops at <|end_file|> "
                                                "first).")] = 65536,
    greedy: Annotated[bool, typer.Option("--greedy", help="Argmax decoding (the default unless --temperature "
                                         "is given).")] = False,
    temperature: Annotated[float | None, typer.Option(help="Sample at this temperature (default: greedy; 0 is greedy "
                                                      "too, argmax being sampling's limit as it falls).")] = None,
    top_k: Annotated[int, typer.Option(help="Sample only among the k likeliest tokens (0: no limit).")] = 0,
    top_p: Annotated[float, typer.Option(help="Sample only from the smallest set with this probability.")] = 1.0,
    seed: Annotated[int, typer.Option(help="Random seed for sampling.")] = 0,
    stream: Annotated[bool, typer.Option("--stream", help="Write text as it is generated.")] = False,
    cache: Cache = default_cache(),
    threads: Threads = None,
):
    """Generate a file from its path (or continue a prompt), stopping at <|end_file|>; writes the exact bytes.

    Past the model's context it slides: the oldest `stride` tokens are dropped and the window re-read
    (laam.windows; context and stride come from the model's laam.json), as in training.
    """
    from laam.data.records import END_FILE, generated_bytes, path_prompt
    from laam.data.tokenizer import decode_ids, encode_records
    from laam.engine import Request, Sampling, WindowedGenerator
    from laam.model.folder import load_model
    from laam.model.info import load_training_corpus

    if (path is None) == (prompt is None):
        raise LaamError("give exactly one of --path or --prompt")
    if greedy and temperature is not None:
        raise LaamError("--greedy and --temperature exclude each other")
    check_value("--max-new-tokens", max_new_tokens, AT_LEAST_1)
    sampling = Sampling(greedy=temperature is None, temperature=1.0 if temperature is None else temperature,
                        top_k=top_k, top_p=top_p, seed=seed)
    loaded = load_model(model_dir, threads=threads)
    tokenizer = loaded.tokenizer
    encoding = "utf-8"
    if path is not None:  # the one non-UTF-8 file of Linux 1.0 comes back as its Latin-1 bytes
        encoding = loaded.info.encoding(path)  # laam.json records it; an older one: the corpus, when it loads
        if encoding is None:
            try:
                corpus = load_training_corpus(loaded.info, cache)
                encoding = next((f.encoding for f in corpus.files if f.path == path), "utf-8")
            except LaamError:
                encoding = "utf-8"
    text = path_prompt(path) if path is not None else prompt
    ids = encode_records(tokenizer, [text])[0]
    stop = loaded.special[END_FILE]
    generated: list[int] = []
    written = 0

    def emit(final: bool = False):
        nonlocal written
        body = generated[:-1] if generated and generated[-1] == stop else generated
        decoded = decode_ids(tokenizer, body)
        if not final and decoded.endswith("\ufffd"):
            return  # half of a multi-byte character: wait for the rest
        sys.stdout.buffer.write(generated_bytes(decoded[written:], encoding))
        sys.stdout.buffer.flush()
        written = len(decoded)

    def on_token(_, token):
        generated.append(token)
        if stream:
            emit()

    engine = WindowedGenerator(loaded.model, loaded.policy, batch_size=1)
    began = time.perf_counter()
    engine.run([Request(ids, max_new_tokens, stop)], sampling, on_token=on_token)
    emit(final=True)
    seconds = time.perf_counter() - began
    ended = "ended the file" if generated and generated[-1] == stop else "hit --max-new-tokens"
    console.print(f"[dim]{len(generated)} tokens in {seconds:.2f} s ({len(generated) / max(seconds, 1e-9):.0f} "
                  f"tokens/s); {ended}[/]")


# --- extract -------------------------------------------------------------------------------------

@app.command("extract")
def extract_command(
    model_dir: ModelDir,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the regenerated tree (shaped like the "
                                          "original: linux/kernel/sched.c …).")],
    files: Files = None,
    batch_size: BatchSize = 64,
    drafts: Annotated[bool, typer.Option(help="Check the original as a draft (same output, faster when "
                                         "memorized).")] = True,
    cache: Cache = default_cache(),
    threads: Threads = None,
    force: Force = False,
    quiet: Quiet = False,
):
    """Regenerate every corpus file from its path prompt (greedy) into a tree shaped like the original."""
    from laam.data.corpus import select_files
    from laam.io import atomic_write_bytes, output_path, refuse_replacing, sha256_bytes
    from laam.model.folder import load_model
    from laam.model.info import load_training_corpus
    from laam.proof.regenerate import regenerate

    check_value("--batch-size", batch_size, AT_LEAST_1)
    if out_dir.exists() and not out_dir.is_dir():
        raise LaamError(f"--out {out_dir} is a file, not a folder")
    loaded = load_model(model_dir, threads=threads)
    chosen = select_files(load_training_corpus(loaded.info, cache).files, [files] if files else None)
    # refused before the work where the original's bytes already show it (the regenerated ones are checked again)
    refuse_replacing({output_path(out_dir, f.path): f.sha256 or sha256_bytes(f.data) for f in chosen}, force)
    began = time.perf_counter()
    with phases(not quiet, console) as start:
        regenerated = regenerate(loaded.model, loaded.tokenizer, chosen, loaded.policy, batch_size,
                                 on_done=start("regenerating", len(chosen)) if start else None, drafts=drafts)
    seconds = time.perf_counter() - began
    targets = {output_path(out_dir, r.file.path): r for r in regenerated}
    refuse_replacing({path: sha256_bytes(r.data) for path, r in targets.items()}, force)
    for done, (path, r) in enumerate(targets.items()):
        try:
            atomic_write_bytes(path, r.data)
        except OSError as error:
            raise LaamError(f"could not write {path}: {error.strerror or error} ({done} of {len(targets)} files "
                            f"written into {out_dir})") from error
    exact = sum(r.data == r.file.data for r in regenerated)
    tokens = sum(len(r.ids) for r in regenerated)
    out.print(f"{len(regenerated)} files regenerated into {out_dir} in {seconds:.1f} s "
              f"({tokens / max(seconds, 1e-9):,.0f} tokens/s); {exact} identical to the original")
