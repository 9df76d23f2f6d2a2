"""LaaM — Linux as a Model.

The package mirrors the pipeline (docs/architecture.md has the map and the data between stages):

    data/      fetch a release, read it safely, records, licenses, tokenizer, token cache
    windows.py the context rule: which tokens the model sees when predicting each position
    model/     config, presets, the model folder (save and the one loader), laam.json, attention kernel
    engine/    the one decoding engine: KV cache, sliding windows, batching, drafts, lockstep
    train/     the training loop, its loss, checkpoints, metrics and memorization check
    proof/     regeneration, audit, extraction metrics, HTML report, trace, the model as compressor
    publish/   facts about a model folder, model card, openness checklists, BOM, Hub, GGUF
    pipeline.py  fetch -> tokenizer -> train -> compress -> audit -> card, as `laam run` does it
    cli/       the `laam` command: parsing only
"""

__version__ = "0.1.0"
