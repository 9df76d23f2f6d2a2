"""`laam card`, `laam bom`, `laam push` and `laam export gguf`: document and publish a model folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from laam.cli.app import Cache, ModelDir, Quiet, app, out
from laam.data.fetch import default_cache
from laam.errors import LaamError

export_app = typer.Typer(help="Export a model folder to other formats.", no_args_is_help=True)
app.add_typer(export_app, name="export")

License = Annotated[str, typer.Option("--license", help="SPDX id of the license the weights are declared under "
                                      "(the original LaaM declared MIT).")]
RepoId = Annotated[str | None, typer.Option("--repo-id", help="ORG/NAME on the Hugging Face Hub, used in the "
                                            "card's loading examples (default: the local folder).")]


def _card_config(license_, repo_id, audit, docs_license, technical_report, research_paper, code_url,
                 original_call=True):
    from laam.publish.facts import CardConfig

    return CardConfig(license=license_, repo_id=repo_id, audit=audit, docs_license=docs_license,
                      technical_report=technical_report, research_paper=research_paper, code_url=code_url,
                      original_call=original_call)


@app.command("card")
def card_command(
    model: ModelDir,
    license_: License = "MIT",
    repo_id: RepoId = None,
    audit: Annotated[Path | None, typer.Option(help="audit.json, or the folder holding it (default: the model "
                                               "folder's, then its run folder's; none: 'not audited yet').")] = None,
    docs_license: Annotated[str, typer.Option(help="SPDX id of the license of the card and reports.")] = "CC-BY-4.0",
    technical_report: Annotated[str | None, typer.Option(help="URL or path of a technical report, if any.")] = None,
    research_paper: Annotated[str | None, typer.Option(help="URL of a research paper, if any.")] = None,
    code_url: Annotated[str | None, typer.Option(help="Where the laam source code is published.")] = None,
    original_call: Annotated[bool, typer.Option(help="Run the original LaaM's call (a stock pipeline sampling 256 "
                                                "tokens at temperature 0.2 from an empty prompt) and show its "
                                                "output on the card.")] = True,
    cache: Cache = default_cache(),
    quiet: Quiet = False,
):
    """Write README.md (model card), mof.yml and bom.cdx.json into the model folder, from the run's facts."""
    from laam.publish.card import write_card

    config = _card_config(license_, repo_id, audit, docs_license, technical_report, research_paper, code_url,
                          original_call)
    print_card(write_card(model, config, cache, progress=not quiet), model)


def print_card(result, model: Path) -> None:
    """What `laam card` wrote, and its metadata checked offline (a problem is an error)."""
    from laam.publish.card import check_card

    for path in result.files:
        out.print(f"  wrote {path}")
    for note in result.notes:
        out.print(f"[yellow]not quoted:[/] {note}")
    out.print(f"Model Openness Framework: {result.mof_class}")
    problems = check_card(model)
    if problems:
        raise LaamError("card metadata: " + "; ".join(problems))
    out.print(f"card metadata OK ({result.card})")


@app.command("bom")
def bom_command(
    model: ModelDir,
    license_: License = "MIT",
    repo_id: RepoId = None,
    out_path: Annotated[Path | None, typer.Option("--out", help="Where to write the CycloneDX JSON "
                                                  "(default: MODEL/bom.cdx.json).")] = None,
    cache: Cache = default_cache(),
    quiet: Quiet = False,
):
    """Write the AI bill of materials (CycloneDX 1.6 ML-BOM, validated against the official schema)."""
    from laam.publish.bom import write_bom
    from laam.publish.facts import CardConfig, gather_facts

    config = CardConfig(license=license_, repo_id=repo_id)
    facts = gather_facts(model, config, cache, progress=not quiet)
    path = write_bom(facts, config, out_path or Path(model) / "bom.cdx.json")
    for note in facts.report_notes:
        out.print(f"[yellow]not quoted:[/] {note}")
    out.print(f"wrote {path} (valid CycloneDX 1.6)")


@app.command("push")
def push_command(
    repo_id: Annotated[str, typer.Option("--repo-id", help="ORG/NAME of the Hub model repository (created if "
                                         "missing).")],
    model: ModelDir,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would be uploaded and check the card's "
                                          "metadata; upload nothing.")] = False,
    private: Annotated[bool, typer.Option(help="Create the repository as private.")] = False,
    message: Annotated[str | None, typer.Option(help="Commit message (default: 'Upload NAME with laam push').")]
    = None,
):
    """Upload model, tokenizer, card, BOM, manifest and audit to the Hugging Face Hub (token: HF_TOKEN or login)."""
    from laam.publish.hub import plan_push, push

    plan = plan_push(model, repo_id)
    for name, size in plan.files:
        out.print(f"  {size:>12,}  {name}")
    out.print(f"{len(plan.files)} files, {plan.total_bytes:,} bytes -> https://huggingface.co/{repo_id}")
    for warning in plan.warnings:
        out.print(f"[yellow]warning:[/] {warning}")
    if plan.problems:
        raise LaamError("; ".join(plan.problems))
    if dry_run:
        out.print("dry run: card metadata OK, nothing uploaded")
        return
    out.print(f"pushed: {push(plan, private=private, message=message)}")


@export_app.command("gguf")
def export_gguf_command(
    model: ModelDir,
    out_path: Annotated[Path | None, typer.Option("--out", help="GGUF file to write (default: MODEL/NAME.gguf).")]
    = None,
    dtype: Annotated[str, typer.Option(help="Weight type: f32 (exact), f16 (half the size) or q8_0 (8-bit blocks, "
                                       "about a quarter; quantized with the gguf package, as llama.cpp's converter "
                                       "does).")] = "f32",
):
    """Write a GGUF file (Llama architecture, this BPE tokenizer) that llama.cpp loads, and regenerate_gguf.py beside
    it: llama-cpp-python with the model's sliding window, for files longer than its context."""
    from laam.publish.gguf import export_gguf

    result = export_gguf(model, out_path, dtype)
    out.print(f"wrote {result.path}: {result.tensors} tensors, vocabulary {result.vocab_size}, "
              f"{result.bytes:,} bytes ({dtype})")
    out.print(f"wrote {result.script}: python {result.script.name} {result.path.name} PATH regenerates a file")
