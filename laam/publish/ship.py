"""Ship a finished model: a self-contained folder (e.g. `models/linux-1.0/` of the repository) that gives back every
training file byte for byte with laam, with stock transformers alone and with llama.cpp, and carries its proof.

`ship_model` refuses a model that is not exact, by measuring it (a float32 teacher-forced pass over every window:
a label in laam.json is not evidence); chooses the weights' dtype by measurement (proof.precision: bfloat16 only
when no body position of any training file flips, for both ways a bf16 folder is read, else float32); writes the
folder atomically; then runs on it what `laam run` runs after training (publish.finish: compression round trip,
audit, card), so every report in it is bound to its own weights (model/binding.py). A file that does not come back
byte-exact, or a folder over the size limit, removes the folder: nothing half-proven is left at DEST.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from laam.errors import LaamError
from laam.io import atomic_folder, atomic_write_text
from laam.model.binding import BINDING_KEY, BOUND_FILES, changed_during, fingerprints, folder_state, report_binding
from laam.model.info import INFO_FILE
from laam.progress import console, phases
from laam.publish.facts import SHIP_FILE

MAX_BYTES = 25_000_000  # the whole folder, reports included: issue 20's limit for a folder committed to git
DTYPES = ("auto", "float32", "bfloat16")
# what a model folder holds besides its reports: every file that decides a decoder's output, and laam.json;
# regenerate_gguf.py belongs beside a .gguf, which a shipped folder does not carry
MODEL_FILES = tuple(name for name in BOUND_FILES if name != "regenerate_gguf.py") + (INFO_FILE,)
SHIPPED_METRICS = "metrics.jsonl"  # the run's training metrics, read by the card (train.metrics.find_metrics)


@dataclass
class ShipResult:
    folder: Path
    dtype: str
    reason: str
    files: int  # training files, every one byte-exact
    bytes: int  # the folder's total size
    seconds: float
    record: dict  # ship.json's content
    finished: object  # publish.finish.Finished: the compression, audit and card results on DEST


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file())


def largest_files(folder: Path, count: int = 5) -> dict[str, int]:
    """The `count` largest files under `folder` (relative path -> bytes): what a size over the limit is made of."""
    sizes = {p.relative_to(folder).as_posix(): p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()}
    return dict(sorted(sizes.items(), key=lambda item: -item[1])[:count])


def over_limit(folder: Path, size: int, limit: int, what: str) -> LaamError:
    biggest = ", ".join(f"{name} {n:,}" for name, n in largest_files(folder).items())
    return LaamError(f"{what} take {size:,} bytes, over the limit of {limit:,} (largest: {biggest})")


def choose_dtype(check, asked: str) -> tuple[str, str]:
    """(dtype, why) from a proof.precision.PrecisionCheck: bfloat16 when asked for or left to measurement ("auto")
    and no position flips; float32 otherwise. Asking for bfloat16 where positions flip is a LaamError."""
    if asked == "float32":
        return "float32", "--dtype float32 was asked for (bfloat16 not measured)"
    flipped = {name: v["flips"] for name, v in check.variants.items() if v["flips"]}
    if check.bf16_safe:
        return "bfloat16", (f"no flip in bfloat16: all {check.positions:,} checked positions (bodies and path ends) "
                            f"of {check.files} files give float32's token, with bf16 weights in float32 and in "
                            "bfloat16 arithmetic")
    flips = "; ".join(f"{name}: {n} positions flip" for name, n in flipped.items()) or "not measured"
    if asked == "bfloat16":
        raise LaamError(f"--dtype bfloat16 refused: {flips} (the model would not give back every file); use --dtype "
                        "auto or float32")
    return "float32", f"bfloat16 would change greedy's token ({flips}), so the weights stay float32"


def check_destination(source: Path, dest: Path, force: bool) -> None:
    """DEST may be new, empty, an earlier ship of the same model (its ship.json names these source files), or,
    with --force, anything but the current, home or an enclosing folder; never inside MODEL_DIR or around it."""
    from laam.train.run_folder import protected

    if dest.exists() and not dest.is_dir():
        raise LaamError(f"--to {dest} is a file; give the folder to ship the model into")
    here, there = source.resolve(), dest.resolve()
    if there == here or there.is_relative_to(here) or here.is_relative_to(there):
        raise LaamError(f"--to {dest} overlaps the model folder {source}: ship into a folder outside it")
    why = protected(dest) if dest.is_dir() else None
    if why:
        raise LaamError(f"refusing to replace {dest}: {why}")
    if force or not dest.is_dir() or not any(dest.iterdir()):
        return
    try:
        earlier = json.loads((dest / SHIP_FILE).read_text())["source"]["files"]
    except (OSError, ValueError, KeyError, TypeError):
        earlier = None
    if earlier != fingerprints(source):
        raise LaamError(f"{dest} already exists with other content; pass --force to replace it")


def write_model_files(source: Path, dest: Path, dtype: str, weights: dict) -> None:
    """DEST, atomically: MODEL's files (weights in `dtype`, config.json's dtype saying so), laam.json recording the
    choice under `weights`, and the run's training metrics and curve for the card."""
    from laam.model.info import read_model_info
    from laam.publish.facts import CURVE_FILE, curve_source
    from laam.train.metrics import find_metrics

    info = read_model_info(source)
    info.weights = weights
    with atomic_folder(dest) as scratch:
        for name in MODEL_FILES:
            if (source / name).is_file():
                (scratch / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source / name, scratch / name)
        atomic_write_text(scratch / INFO_FILE, json.dumps(asdict(info), indent=1) + "\n")
        if dtype == "bfloat16":
            to_bfloat16(scratch)
        metrics, curve = find_metrics(source), curve_source(source)
        if metrics is not None:
            shutil.copyfile(metrics, scratch / SHIPPED_METRICS)
        if (source / CURVE_FILE).is_file() or curve is not None:
            shutil.copyfile(source / CURVE_FILE if (source / CURVE_FILE).is_file() else curve, scratch / CURVE_FILE)


def to_bfloat16(folder: Path) -> None:
    """Rewrite model.safetensors with every floating tensor in bfloat16 (its metadata kept) and config.json's dtype
    to match, so that stock transformers loads it as bfloat16 (from_pretrained's dtype="auto")."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = {name: t.to(torch.bfloat16) if t.is_floating_point() else t for name, t in load_file(str(path)).items()}
    save_file(tensors, str(path), metadata=metadata)
    config = json.loads((folder / "config.json").read_text())
    for key in ("dtype", "torch_dtype"):  # transformers 5 writes `dtype`, earlier versions `torch_dtype`
        if key in config or key == "dtype":
            config[key] = "bfloat16"
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def drop_duplicates(dest: Path) -> None:
    """One copy of each report: the card copies the audit's audit.json and report.html to DEST's top (audit.json,
    audit.html: where a Hub push and a later `laam card` read them), so the byte-identical originals in DEST/audit/
    go, and margins.npz moves beside audit.html, whose page says it is beside it."""
    from laam.io import sha256_file
    from laam.proof.margin import MARGINS_FILE
    from laam.publish.facts import AUDIT_FILE, AUDIT_HTML

    audit = dest / "audit"
    for inner, top in ((AUDIT_FILE, AUDIT_FILE), ("report.html", AUDIT_HTML)):
        if (audit / inner).is_file() and (dest / top).is_file() and \
                sha256_file(audit / inner) == sha256_file(dest / top):
            (audit / inner).unlink()
    if (audit / MARGINS_FILE).is_file():
        (audit / MARGINS_FILE).replace(dest / MARGINS_FILE)
    if audit.is_dir() and not any(audit.iterdir()):
        audit.rmdir()


def not_exact(finished) -> list[str]:
    """The files the audit did not get back byte for byte (and ended) with laam's engine, from publish.finish's
    result."""
    return [row["path"] for row in finished.audit.audit["files"] if not (row["verbatim"] and row["ended"])]


def stock_problems(finished) -> list[str]:
    """Each stock decoder the audit ran on DEST (proof.stock: transformers with custom_generate, laam not
    importable) that failed a file or could not run, in one phrase each."""
    problems = []
    for decoder in finished.audit.audit.get("decoders") or []:
        if decoder["decoder"] == "laam":
            continue
        if decoder.get("not_run"):
            problems.append(f"{decoder['decoder']} did not run ({decoder['not_run']})")
        elif decoder["failed"]:
            problems.append(f"{decoder['decoder']} gave back {decoder['exact']} of {decoder['files']} files "
                            f"(first not exact: {decoder['failed'][0]})")
    return problems


def ship_model(model_dir: Path, dest: Path, cache: Path | None = None, dtype: str = "auto", force: bool = False,
               max_bytes: int = MAX_BYTES, threads: int | None = None, progress: bool = True,
               card_config=None) -> ShipResult:
    """Ship MODEL_DIR into DEST (module docstring); the folder, its dtype and why, its size."""
    from laam.model.folder import load_model
    from laam.model.info import load_training_corpus
    from laam.proof.precision import check_precision
    from laam.publish.finish import finish_model

    began = time.perf_counter()
    source, dest = Path(model_dir), Path(dest)
    if dtype not in DTYPES:
        raise LaamError(f"unknown --dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    check_destination(source, dest, force)
    # the precision check and the dtype decision are about the files read here; DEST is a copy made after them, so
    # the source must not change in between (model.binding.changed_during, checked once DEST is written)
    before = folder_state(source)
    loaded = load_model(source, threads=threads)
    corpus = load_training_corpus(loaded.info, cache, progress=progress)
    with phases(progress, console) as start:
        check = check_precision(loaded.model, loaded.tokenizer, corpus.files, loaded.policy,
                                bf16=dtype != "float32", progress=start)
    if check.fp32_wrong:
        first = next(iter(check.fp32_wrong))
        raise LaamError(f"{source} does not give back every file: {sum(check.fp32_wrong.values())} body tokens of "
                        f"{len(check.fp32_wrong)} of {check.files} files are not greedy's choice in float32 (first: "
                        f"{first}); only an exact model is shipped")
    chosen, reason = choose_dtype(check, dtype)
    weights = {"dtype": chosen, "reason": reason, "evidence": SHIP_FILE}
    console.print(f"weights: {chosen} ({reason})", highlight=False, soft_wrap=True)
    write_model_files(source, dest, chosen, weights)
    # the decision and its evidence first, bound to DEST's weights, so that the card written on DEST below can
    # quote it; the exactness and size checks are added once they are made
    record = {"source": {"folder": str(source), "files": before.files},
              "dtype": chosen, "asked": dtype, "reason": reason, "precision": check.to_dict(),
              BINDING_KEY: report_binding(dest, dtype=chosen)}
    try:
        changed = changed_during(before, source, "shipping")
        if changed:  # after DEST was copied from it, nothing more is read from the source
            raise LaamError(f"{changed}: the precision check was made on other files than those copied")
        atomic_write_text(dest / SHIP_FILE, json.dumps(record, indent=1) + "\n")
        if folder_bytes(dest) >= max_bytes:
            raise over_limit(dest, folder_bytes(dest), max_bytes, "its model files alone")
        finished = finish_model(dest, cache, threads, progress=progress, card_config=card_config)
        missing = not_exact(finished)
        if missing:
            raise LaamError(f"{len(missing)} of {len(corpus.files)} files did not come back byte-exact from it "
                            f"(first: {missing[0]})")
        stock = stock_problems(finished)
        if stock:
            raise LaamError("a stock decoder does not give its files back: " + "; ".join(stock))
        drop_duplicates(dest)
        finished.audit.path, finished.audit.html = dest / "audit.json", dest / "audit.html"
        size = folder_bytes(dest) - (dest / SHIP_FILE).stat().st_size
        if size >= max_bytes:
            raise over_limit(dest, size, max_bytes, "its files, reports included,")
        trip = finished.compression["roundtrip"]
        record.update({"exact": {"files": len(corpus.files), "audit_byte_exact": len(corpus.files) - len(missing),
                                 "roundtrip_verified": trip["verified"],
                                 "decoders": [{k: d.get(k) for k in ("decoder", "files", "exact", "selection")}
                                              for d in finished.audit.audit.get("decoders") or []]},
                       "bytes": {"without_this_file": size, "limit": max_bytes, "largest": largest_files(dest)},
                       "seconds": round(time.perf_counter() - began, 1)})
        record[BINDING_KEY] = report_binding(dest, dtype=chosen)
        atomic_write_text(dest / SHIP_FILE, json.dumps(record, indent=1) + "\n")
    except BaseException as error:
        shutil.rmtree(dest, ignore_errors=True)  # nothing half-proven stays at DEST
        if isinstance(error, LaamError):
            raise LaamError(f"not shipped, {dest} removed: {error}") from error
        raise
    return ShipResult(dest, chosen, reason, len(corpus.files), folder_bytes(dest), time.perf_counter() - began, record,
                      finished)
