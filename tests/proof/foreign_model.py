"""A control for auditing models laam did not train: a tiny GPT-2 with its own byte-level BPE, trained by the tests
on a few kernel files until it has memorized them (or left untrained)."""

from __future__ import annotations

from pathlib import Path

import torch

EOS = "<|endoftext|>"


def train_bpe(texts: list[str], out: Path, vocab_size: int = 1000):
    """A GPT-2-style byte-level BPE trained on `texts`, saved for AutoTokenizer."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=1, special_tokens=[EOS], show_progress=False)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, bos_token=EOS, eos_token=EOS,
                                        pad_token=EOS)
    tokenizer.save_pretrained(str(out))
    return tokenizer


def gpt2_folder(texts: list[str], trained: list[str], out: Path, steps: int = 400, seed: int = 0) -> float:
    """Save a GPT-2 (2 layers, 64 wide, 512 positions) with its own tokenizer in `out`, trained full-batch on the
    documents `trained` (none: random weights) until every next token is its argmax; returns that accuracy."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    tokenizer = train_bpe(texts, out)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=512, n_embd=64, n_layer=2, n_head=4,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id)
    model = GPT2LMHeadModel(config)
    accuracy = 0.0
    if trained:
        docs = [tokenizer(t)["input_ids"] for t in trained]
        assert max(map(len, docs)) <= config.n_positions, "a trained document must fit the context"
        width = max(map(len, docs))
        x = torch.full((len(docs), width), tokenizer.eos_token_id)
        mask = torch.zeros((len(docs), width), dtype=torch.long)
        for i, d in enumerate(docs):
            x[i, :len(d)], mask[i, :len(d)] = torch.tensor(d), 1
        labels = x.masked_fill(mask == 0, -100)
        optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
        for step in range(steps):
            out_ = model(input_ids=x, attention_mask=mask, labels=labels)
            optimizer.zero_grad()
            out_.loss.backward()
            optimizer.step()
            if step % 20 == 19:
                predicted = out_.logits[:, :-1].argmax(-1)
                scored = labels[:, 1:] != -100
                accuracy = (predicted[scored] == labels[:, 1:][scored]).float().mean().item()
                if accuracy == 1.0:
                    break
    model.eval().save_pretrained(str(out))
    return accuracy
