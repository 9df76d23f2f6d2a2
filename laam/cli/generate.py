"""`laam generate` and `laam extract`: what a model gives back from a path prompt, as exact bytes. The work is
engine.prompt.generate and proof.extract.extract_tree; this parses the options and prints."""

from __future__ import annotations

import sys
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
    from laam.engine import Sampling
    from laam.engine.prompt import generate
    from laam.model.folder import load_model

    if (path is None) == (prompt is None):
        raise LaamError("give exactly one of --path or --prompt")
    if greedy and temperature is not None:
        raise LaamError("--greedy and --temperature exclude each other")
    check_value("--max-new-tokens", max_new_tokens, AT_LEAST_1)
    sampling = Sampling(greedy=temperature is None, temperature=1.0 if temperature is None else temperature,
                        top_k=top_k, top_p=top_p, seed=seed)
    result = generate(load_model(model_dir, threads=threads), path, prompt, max_new_tokens, sampling, cache,
                      on_bytes=_write if stream else None)
    if not stream:
        _write(result.data)
    ended = "ended the file" if result.ended else "hit --max-new-tokens"
    console.print(f"[dim]{result.tokens} tokens in {result.seconds:.2f} s "
                  f"({result.tokens / max(result.seconds, 1e-9):.0f} tokens/s); {ended}[/]")


def _write(data: bytes) -> None:
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()


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
    from laam.proof.extract import extract_tree

    check_value("--batch-size", batch_size, AT_LEAST_1)
    if out_dir.exists() and not out_dir.is_dir():
        raise LaamError(f"--out {out_dir} is a file, not a folder")
    with phases(not quiet, console) as start:
        result = extract_tree(model_dir, out_dir, files, batch_size, drafts, cache, threads, force, progress=start)
    out.print(f"{len(result.regenerated)} files regenerated into {out_dir} in {result.seconds:.1f} s "
              f"({result.tokens / max(result.seconds, 1e-9):,.0f} tokens/s); {result.identical} identical to the "
              "original")
