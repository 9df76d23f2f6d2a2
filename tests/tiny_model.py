"""Train the tiny memorizing model the fixtures share (a minimal loop, so tests of later stages
do not depend on the training engine's options)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from laam.data.records import PAD
from laam.data.tokenizer import load_tokenizer, special_ids
from laam.data.tokens import build_token_cache
from laam.model.folder import save_model_folder
from laam.train.batches import WindowSet
from laam.windows import WindowPolicy

POLICY = WindowPolicy(context=128, stride=64)


def train_tiny_model(corpus, tokenizer_dir: Path, out: Path, max_steps: int = 600, seed: int = 0) -> float:
    """Full-batch AdamW on every training window (train.batches, the same windows `laam train` uses) until the
    body tokens (and each path's <|end_header|>, as the checks score it) are all right."""
    torch.manual_seed(seed)
    tokenizer = load_tokenizer(tokenizer_dir)
    ids = special_ids(tokenizer)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=POLICY.context,
                         bos_token_id=ids["<|start_file|>"], eos_token_id=ids["<|end_file|>"],
                         pad_token_id=ids["<|pad|>"], tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    with tempfile.TemporaryDirectory() as cache:  # the token cache is memory-mapped: read it while it exists
        window_set = WindowSet(build_token_cache(corpus, tokenizer, tokenizer_dir, Path(cache)), POLICY)
        batch = window_set.batch(range(len(window_set)), ids[PAD])
    x, y, body = batch["input_ids"], batch["labels"], batch["body"] | batch["header_end"]  # what the checks score
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / max_steps)
    accuracy = 0.0
    for step in range(max_steps):
        logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), y.flatten(), ignore_index=-100)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        if step % 25 == 0:
            accuracy = (logits.argmax(-1)[body] == y[body]).float().mean().item()
            if accuracy == 1.0:
                break
    # the folder `laam train` writes: weights, tokenizer, generation config, laam.json, custom_generate/
    save_model_folder(model, tokenizer, corpus, POLICY, out, {"steps": step + 1, "final_loss": loss.item()})
    return accuracy
