"""`laam compress` and `laam decompress`: the model as an entropy coder of its own corpus."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from laam.cli.allocator import ensure_allocator_settings
from laam.cli.app import Allocator, Cache, ModelDir, Quiet, app, console, out
from laam.data.fetch import default_cache
from laam.errors import LaamError
from laam.proof.compress.run import CompressConfig
from laam.train.threads import available_cpus

CompressThreads = Annotated[int | None, typer.Option(
    "--threads", help="CPU threads for the model (torch.set_num_threads; default: every usable CPU). The archive "
    "records the number: decompress uses it unless told otherwise, since the thread count can change float sums.")]
DecompressThreads = Annotated[int | None, typer.Option(
    "--threads", help="CPU threads for the model (default: the number the archive was compressed with; another "
    "number can change float sums and derail decoding).")]
Device = Annotated[str, typer.Option(help="auto (cuda when available, else cpu), cpu, cuda or cuda:N. Decompress "
                                     "on the same kind of device and software as compress.")]


@app.command("compress")
def compress_command(
    model: ModelDir,
    archive: Annotated[Path, typer.Option("--out", help="Archive file to write (e.g. linux-1.0.laamz).")],
    files: Annotated[list[str] | None, typer.Option(
        "--files", help="Code only corpus paths matching this glob (repeatable; `*` crosses `/`). Default: every "
        "file of the model's training corpus.")] = None,
    batch_size: Annotated[int, typer.Option(help="Files stepped through the model together (the archive records "
                                            "it; decompress follows).")] = CompressConfig.batch_size,
    device: Device = "auto",
    threads: CompressThreads = None,
    roundtrip: Annotated[bool, typer.Option(help="Decode the archive right after writing it and check every file's "
                                            "SHA-256 (measures decompression speed; doubles the time).")] = True,
    archive_baselines: Annotated[bool, typer.Option(help="Also run gzip/xz/zstd on the corpus's whole uncompressed "
                                                    "release tar (xz -9e takes a while on big trees).")] = True,
    report: Annotated[Path | None, typer.Option(help="Where to write the JSON report (default: compression.json "
                                                "beside --out).")] = None,
    cache: Cache = default_cache(),
    quiet: Quiet = False,
    allocator: Allocator = True,
):
    """Arithmetic-code the model's corpus under its own next-token probabilities, and compare with gzip/xz/zstd."""
    ensure_allocator_settings(allocator)
    import torch

    from laam.proof.compress.run import compress_corpus

    if archive.is_dir():
        raise LaamError(f"--out {archive} is a folder; give the archive file to write (e.g. {archive}/corpus.laamz)")
    torch.set_num_threads(threads or available_cpus())
    result = compress_corpus(model, archive, files, CompressConfig(batch_size=batch_size, device=device), cache,
                             roundtrip=roundtrip, archive_baselines=archive_baselines, report_path=report, quiet=quiet)
    print_compression(result)


def print_compression(result: dict) -> None:
    """compression.json's figures, in a few lines; a failed round trip is an error."""
    from laam.proof.compress.baselines import BASELINES

    corpus, rates, speed = result["corpus"], result["bits_per_byte"], result["throughput"]
    archive = result["archive"]["path"]
    out.print(f"[bold]{archive}[/]: {corpus['files']} files, {corpus['bytes']:,} bytes -> "
              f"{result['archive']['bytes']:,} bytes")
    weights = result["model"]["weights_bytes"]
    out.print(f"  model      {rates['raw']:.4f} bits/byte raw, {rates['adjusted']:.4f} adjusted (+{weights:,} weight "
              f"bytes); streams alone {rates['stream']:.4f}, cross-entropy {rates['ideal']:.4f}")
    for scope in ("same_bytes", "archive"):
        rows = result["baselines"][scope]
        if rows:
            label = "same bytes" if scope == "same_bytes" else rows["name"]
            cells = ", ".join(f"{name} {rows[name]['bits_per_byte']:.4f}" for name in BASELINES)
            out.print(f"  {label:<10} {rows['bytes']:,} bytes: {cells} bits/byte")
    out.print(f"  compress   {speed['compress_bytes_per_s']:,.0f} bytes/s ({speed['compress_seconds']:.1f} s)")
    if result["roundtrip"]:
        out.print(f"  decompress {speed['decompress_bytes_per_s']:,.0f} bytes/s ({speed['decompress_seconds']:.1f} s), "
                  f"{result['roundtrip']['verified']} of {result['roundtrip']['files']} files byte-exact")
        if result["roundtrip"]["verified"] != result["roundtrip"]["files"]:
            raise LaamError("the round trip failed: decoding did not give back every file (see the report "
                            f"{result['report_path']})")
    out.print(f"  report     {result['report_path']}")


@app.command("decompress")
def decompress_command(
    model: ModelDir,
    archive: Annotated[Path, typer.Argument(help="Archive written by `laam compress`.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder to rebuild the files in (their paths under it).")],
    verify: Annotated[bool, typer.Option(help="Check every rebuilt file against the SHA-256 in the archive's file "
                                         "table before writing it (sizes are always checked); --no-verify "
                                         "skips it.")] = True,
    device: Device = "auto",
    threads: DecompressThreads = None,
    force: Annotated[bool, typer.Option("--force", help="Replace files under --out that hold other bytes than the "
                                        "archive's (default: stop, naming the first).")] = False,
    quiet: Quiet = False,
    allocator: Allocator = True,
):
    """Rebuild every file of an archive, byte for byte, from the model that compressed it."""
    ensure_allocator_settings(allocator)
    import torch

    from laam.io import atomic_write_bytes, output_path, refuse_replacing
    from laam.model.folder import load_model
    from laam.proof.compress.coder import decompress_container
    from laam.proof.compress.container import read_container

    if out_dir.exists() and not out_dir.is_dir():
        raise LaamError(f"--out {out_dir} is a file, not a folder (decompress rebuilds a tree of files in it)")
    container = read_container(archive)
    torch.set_num_threads(threads or container.header.get("environment", {}).get("threads") or 1)
    targets = {f.path: output_path(out_dir, f.path) for f in container.files}
    refuse_replacing({targets[f.path]: f.sha256 for f in container.files}, force)
    loaded = load_model(model, device)
    started = time.perf_counter()
    written, failed, size = 0, [], 0
    warn = lambda message: console.print(f"[yellow]warning:[/] {message}", highlight=False)  # noqa: E731
    for decoded in decompress_container(loaded, container, verify=verify, quiet=quiet, warn=warn):
        if decoded.ok:
            try:
                atomic_write_bytes(targets[decoded.path], decoded.data)
            except OSError as error:
                raise LaamError(f"could not write {targets[decoded.path]}: {error.strerror or error} ({written} of "
                                f"{len(container.files)} files written into {out_dir})") from error
            written += 1
            size += len(decoded.data)
        else:
            failed.append(f"{decoded.path} ({decoded.problem})")
    seconds = time.perf_counter() - started
    out.print(f"{written} of {len(container.files)} files rebuilt in {out_dir}, {size:,} bytes in {seconds:.1f} s "
              f"({size / max(seconds, 1e-9):,.0f} bytes/s){', SHA-256 verified' if verify else ''}")
    if failed:
        raise LaamError(f"{len(failed)} files did not decode exactly and were not written: " + "; ".join(failed[:5])
                        + (" …" if len(failed) > 5 else ""))
