"""`laam ship MODEL_DIR --to DEST`: a finished model as a self-contained folder with its proof (publish.ship)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from laam.cli.allocator import ensure_allocator_settings
from laam.cli.app import Allocator, Cache, Quiet, app, console, out
from laam.data.fetch import default_cache
from laam.publish.ship import DTYPES, MAX_BYTES


@app.command("ship")
def ship_command(
    model: Annotated[Path, typer.Argument(metavar="MODEL_DIR", help="The finished model folder (a run's model/), "
                                          "every training file memorized.")],
    dest: Annotated[Path, typer.Option("--to", help="The folder to ship it into (e.g. models/linux-1.0): new, "
                                       "empty, or an earlier ship of the same model.")],
    dtype: Annotated[str, typer.Option(help=f"Weights' dtype: {', '.join(DTYPES)}. auto: bfloat16 when no body "
                                       "token of any training file flips in bfloat16 (measured), else float32.")
                     ] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Replace a DEST that holds something else (never the "
                                        "current, home or an enclosing folder).")] = False,
    max_bytes: Annotated[int, typer.Option(help="Refuse (and remove DEST) when the shipped folder, reports "
                                           "included, takes this many bytes or more.")] = MAX_BYTES,
    license_: Annotated[str, typer.Option("--license", help="SPDX id of the license the weights are declared "
                                          "under, for the card.")] = "MIT",
    repo_id: Annotated[str | None, typer.Option("--repo-id", help="ORG/NAME on the Hugging Face Hub, for the "
                                                "card's loading examples (default: the local folder).")] = None,
    original_call: Annotated[bool, typer.Option(help="Run the original LaaM's sampling call with stock "
                                                "transformers and show its output on the card.")] = True,
    threads: Annotated[int | None, typer.Option(help="CPU threads for the checks and the audit (default: "
                                                "torch's).")] = None,
    cache: Cache = default_cache(),
    quiet: Quiet = False,
    allocator: Allocator = True,
):
    """Ship a finished model into DEST: refuse unless every file is exact, choose bf16 or fp32 weights by
    measurement, then compress (round trip), audit and write the card on DEST's own weights."""
    ensure_allocator_settings(allocator)
    from laam.cli.audit import print_audit  # here: importing them registers their commands, after this one
    from laam.cli.compress import print_compression
    from laam.cli.publish import print_card
    from laam.publish.facts import CardConfig
    from laam.publish.ship import ship_model

    card = CardConfig(license=license_, repo_id=repo_id, original_call=original_call)
    result = ship_model(model, dest, cache, dtype, force, max_bytes, threads, progress=not quiet, card_config=card)
    print_compression(result.finished.compression)
    print_audit(result.finished.audit)
    print_card(result.finished.card, result.folder)
    console.print(f"shipped in {result.seconds:.0f} s", highlight=False)
    out.print(f"[bold]{result.folder}[/]: {result.files} of {result.files} files byte-exact, weights {result.dtype} "
              f"({result.reason}), {result.bytes:,} bytes (limit {max_bytes:,})")
    typer.echo(str(result.folder))

