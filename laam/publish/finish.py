"""What follows training, in one place: code the corpus under the model (round trip checked), audit it, write its
card. `laam run` (pipeline.run) runs it on the model it trained, `laam ship` (publish.ship) on the folder it ships,
so every report in a folder is computed on that folder's own weights (model/binding.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from laam.errors import LaamError
from laam.progress import console, phases


@dataclass
class Finished:
    compression: dict | None  # compression.json's content, when compressed
    audit: object | None  # proof.audit.AuditResult, when audited
    card: object | None  # publish.card.CardResult, when audited


def finish_model(model_dir: Path, cache: Path | None = None, threads: int | None = None, compress: bool = True,
                 audit: bool = True, progress: bool = True, card_config=None) -> Finished:
    """Compress MODEL's corpus into MODEL/corpus.laamz and decode it back (a failed round trip stops here, before a
    card could quote it), then audit MODEL (MODEL/audit/) and write its card (publish.card.CardConfig)."""
    compression = audited = card = None
    if compress:
        import torch

        from laam.proof.compress.run import compress_corpus
        from laam.train.threads import available_cpus

        torch.set_num_threads(threads or available_cpus())  # `laam compress`'s default; the archive records it
        compression = compress_corpus(model_dir, Path(model_dir) / "corpus.laamz", cache=cache, quiet=not progress)
        trip = compression.get("roundtrip") or {}
        if trip.get("verified") != trip.get("files"):
            raise LaamError(f"the round trip failed: decoding gave back {trip.get('verified')} of {trip.get('files')} "
                            f"files byte-exact (see {compression['report_path']}); no audit or card was written")
    if audit:
        from laam.proof.audit import audit_model
        from laam.publish.card import write_card

        with phases(progress, console) as start:
            audited = audit_model(model_dir, cache=cache, threads=threads, progress=start)
        card = write_card(model_dir, card_config, cache=cache, progress=progress)
    return Finished(compression, audited, card)
