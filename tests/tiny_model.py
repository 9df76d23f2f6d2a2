"""Train the tiny memorizing model the fixtures share (a minimal loop, so tests of later stages
do not depend on the training engine's options)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

from laam.modelinfo import write_model_info
from laam.tokenizer import encode_records, load_tokenizer, special_ids
from laam.windows import windows

CONTEXT, STRIDE = 128, 64


def window_batch(records_ids, end_header, context=CONTEXT, stride=STRIDE):
    """Inputs, labels, and a mask of the body targets (after <|end_header|>: what a path prompt must bring back)."""
    inputs, labels, body = [], [], []
    for ids in records_ids:
        body_start = ids.index(end_header) + 1
        for start, end, first in windows(len(ids), context, stride):
            pad = context - (end - 1 - start)
            inputs.append(ids[start:end - 1] + [0] * pad)
            targets = ids[start + 1:end]
            labels.append([t if start + 1 + i >= first else -100 for i, t in enumerate(targets)] + [-100] * pad)
            body.append([start + 1 + i >= max(first, body_start) for i in range(end - 1 - start)] + [False] * pad)
    return torch.tensor(inputs), torch.tensor(labels), torch.tensor(body)


def train_tiny_model(corpus, tokenizer_dir: Path, out: Path, max_steps: int = 600, seed: int = 0) -> float:
    torch.manual_seed(seed)
    tokenizer = load_tokenizer(tokenizer_dir)
    ids = special_ids(tokenizer)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=CONTEXT,
                         bos_token_id=ids["<|start_file|>"], eos_token_id=ids["<|end_file|>"],
                         pad_token_id=ids["<|pad|>"], tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    x, y, body = window_batch(encode_records(tokenizer, corpus.records()), ids["<|end_header|>"])
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
    model.generation_config = GenerationConfig(bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
                                               pad_token_id=config.pad_token_id)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_model_info(out, corpus, CONTEXT, STRIDE, {"steps": step + 1, "final_loss": loss.item()})
    return accuracy
