"""Margins under teacher forcing: the arithmetic, and the batched pass against one window at a time."""

from __future__ import annotations

import pytest
import torch

from laam.engine.forcing import forced_margins, token_margins, window_logits


def test_margin_is_true_logit_minus_best_other():
    logits = torch.tensor([[1.0, 5.0, 3.5, -2.0],    # right: 5.0 - 3.5, runner-up 2
                           [1.0, 5.0, 3.5, -2.0],    # wrong (true 2): 3.5 - 5.0, the model's pick 1
                           [4.0, 0.0, 0.5, -1.0]])   # right by 3.5
    m = token_margins(logits, torch.tensor([1, 2, 0]))
    assert m.margin.tolist() == [1.5, -1.5, 3.5]
    assert m.rival.tolist() == [2, 1, 2]
    assert m.predicted.tolist() == [1, 1, 0]
    assert m.correct.tolist() == [True, False, True]
    assert m.margin.dtype == torch.float32
    assert token_margins(logits.bfloat16(), torch.tensor([1, 2, 0])).margin.dtype == torch.float32
    tie = token_margins(torch.tensor([[0.0, 7.0, 7.0, 1.0]]), torch.tensor([2]))
    assert tie.margin.tolist() == [0.0]  # an exact tie: no room at all, whichever token argmax returns


def test_batched_margins_equal_one_window_at_a_time(tiny_model_dir, tiny_corpus):
    """forced_margins on a padded batch of every window of several records (the path of the memorization check
    and the audit) gives each target the margin that window_logits, one unpadded window at a time, gives it."""
    from laam.data.tokenizer import encode_records, load_tokenizer
    from laam.model.folder import load_model
    from laam.proof.margin import body_margins

    torch.set_num_threads(1)
    loaded = load_model(tiny_model_dir)
    tokenizer = load_tokenizer(tiny_model_dir)
    files = sorted(tiny_corpus.files, key=lambda f: len(f.data))
    records = encode_records(tokenizer, [f.record for f in (files[0], files[-1], files[len(files) // 2])])
    starts = [r.index(tokenizer.convert_tokens_to_ids("<|end_header|>")) + 1 for r in records]
    assert max(map(len, records)) > 3 * loaded.policy.context  # sliding windows, short and long rows padded together
    batched = body_margins(loaded.model, records, starts, loaded.policy, pad_id=0, batch_size=5)
    expected = []
    for r, (ids, start) in enumerate(zip(records, starts)):
        for first, logits in window_logits(loaded.model, ids, loaded.policy):
            targets = torch.tensor(ids[first:first + len(logits)])
            m = token_margins(logits, targets)
            for j in range(len(logits)):
                if first + j >= start:
                    expected.append((r, first + j, ids[first + j], int(m.rival[j]), float(m.margin[j])))
    assert len(batched) == len(expected) == sum(len(r) - s for r, s in zip(records, starts))
    assert [(int(a), int(b), int(c)) for a, b, c in zip(batched.record, batched.position, batched.target)] == \
        [e[:3] for e in expected]
    assert batched.margin.tolist() == pytest.approx([e[4] for e in expected], abs=1e-3)
    close = [abs(e[4]) > 1e-3 for e in expected]  # the rival is the same wherever the gap to the third is not a tie
    assert all(int(a) == e[3] for a, e, c in zip(batched.rival, expected, close) if c)
    assert batched.correct.all() and batched.margin.min() > 0  # the tiny model has memorized these files


def test_forced_margins_only_scores_marked_positions_in_chunks(tiny_model_dir, monkeypatch):
    from laam.engine import forcing
    from laam.model.folder import load_model

    model = load_model(tiny_model_dir).model
    ids = torch.tensor([[5, 6, 7, 8], [9, 10, 0, 0]])
    scored = torch.tensor([[False, True, True, True], [True, False, False, False]])
    m = forced_margins(model, ids, torch.roll(ids, -1, dims=1), scored)
    assert len(m.margin) == 4 and m.target.tolist() == [7, 8, 5, 10]
    monkeypatch.setattr(forcing, "LOGITS_PER_CHUNK", 3 * model.lm_head.weight.shape[0])  # 3 rows a call: 3 + 1
    chunked = forced_margins(model, ids, torch.roll(ids, -1, dims=1), scored)
    assert torch.equal(chunked.rival, m.rival) and torch.allclose(chunked.margin, m.margin, atol=1e-5)
    none = forced_margins(model, ids, ids, torch.zeros_like(scored))
    assert len(none.margin) == 0
