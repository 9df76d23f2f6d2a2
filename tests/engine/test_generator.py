"""The generation engine: batched, KV-cached, sliding-window output equals one-at-a-time output and the file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from laam.data.records import END_FILE, path_prompt
from laam.data.tokenizer import decode_ids, encode_records, special_ids
from laam.engine import Request, Sampling, WindowedGenerator
from laam.engine.forcing import window_logits
from laam.model.folder import load_model
from laam.windows import WindowPolicy
from tests.reference import greedy_reference


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    torch.set_num_threads(1)
    loaded = load_model(tiny_model_dir)
    return loaded.model, loaded.tokenizer, loaded.policy


def file_requests(tokenizer, files, extra=8):
    stop = special_ids(tokenizer)[END_FILE]
    prompts = encode_records(tokenizer, [path_prompt(f.path) for f in files])
    bodies = encode_records(tokenizer, [f.text + END_FILE for f in files])
    return [Request(p, len(b) + extra, stop) for p, b in zip(prompts, bodies)], bodies


def test_batched_equals_single_equals_original(tiny, tiny_corpus):
    model, tokenizer, policy = tiny
    requests, bodies = file_requests(tokenizer, tiny_corpus.files)
    assert max(len(b) + len(r.prompt) for r, b in zip(requests, bodies)) > 2 * policy.context  # slides happen
    batched_engine = WindowedGenerator(model, policy, batch_size=5)
    batched = batched_engine.run(requests)
    single = [WindowedGenerator(model, policy, batch_size=1).run([r])[0] for r in requests]
    assert batched == single
    for f, out in zip(tiny_corpus.files, batched):
        assert decode_ids(tokenizer, out) == f.text + END_FILE, f.path
    assert batched_engine.stats.refills > len(requests)  # windows slid
    assert batched_engine.stats.tokens == sum(len(b) for b in bodies)


def test_engine_equals_the_sequential_reference_decoder(tiny, tiny_corpus):
    """As llama2.c checks its runner against the PyTorch model: the batched, cached, drafted engine gives exactly
    what a plain one-sequence, one-token-at-a-time decoder under the same policy gives."""
    model, tokenizer, policy = tiny
    requests, bodies = file_requests(tokenizer, tiny_corpus.files)
    engine = WindowedGenerator(model, policy, batch_size=4).run(
        [Request(r.prompt, r.max_new_tokens, r.stop_id, b) for r, b in zip(requests, bodies)])
    for request, out in zip(requests, engine):
        reference = greedy_reference(model, request.prompt, policy, request.max_new_tokens, request.stop_id)
        assert out == reference[len(request.prompt):]


def test_until_divergence_stops_at_the_first_wrong_token(tiny, tiny_corpus):
    model, tokenizer, policy = tiny
    requests, bodies = file_requests(tokenizer, tiny_corpus.files[:3])
    wrong = [b[:5] + [(b[5] + 1) % 256] + b[6:] for b in bodies]
    outs = WindowedGenerator(model, policy).run(
        [Request(r.prompt, r.max_new_tokens, r.stop_id, w, until_divergence=True) for r, w in zip(requests, wrong)])
    assert outs == [b[:6] for b in bodies]  # five agreed, the sixth is the model's own (the true one)


def test_matches_plain_forward_without_cache(tiny, tiny_corpus):
    """Each greedy token equals the argmax of a fresh forward pass over exactly its window."""
    model, tokenizer, policy = tiny
    f = max(tiny_corpus.files, key=lambda f: len(f.data))
    requests, _ = file_requests(tokenizer, [f])
    prompt = requests[0].prompt
    out = WindowedGenerator(model, policy).run([Request(prompt, 300, None)])[0]
    seq = prompt + out
    with torch.inference_mode():
        for p in range(len(prompt), len(seq), 37):
            start = policy.context_start(p)
            logits = model(input_ids=torch.tensor([seq[start:p]])).logits[0, -1]
            assert int(logits.argmax()) == seq[p]


def test_window_logits_agree_with_generation(tiny, tiny_corpus):
    model, tokenizer, policy = tiny
    ids = encode_records(tokenizer, [tiny_corpus.files[0].record])[0]
    covered = []
    for first, logits in window_logits(model, ids, policy):
        covered.extend(range(first, first + len(logits)))
        assert logits.shape[-1] == len(tokenizer)
    assert covered == list(range(1, len(ids)))


def test_sampling_is_seeded_and_batch_independent(tiny, tiny_corpus):
    model, tokenizer, policy = tiny
    requests, _ = file_requests(tokenizer, tiny_corpus.files[:4])
    requests = [Request(r.prompt, 40, None) for r in requests]
    hot = Sampling(greedy=False, temperature=5.0, top_k=50, top_p=0.95, seed=7)
    a = WindowedGenerator(model, policy, batch_size=4).run(requests, hot)
    b = WindowedGenerator(model, policy, batch_size=1).run(requests, hot)
    other_seed = Sampling(greedy=False, temperature=5.0, top_k=50, top_p=0.95, seed=8)
    c = WindowedGenerator(model, policy, batch_size=4).run(requests, other_seed)
    assert a == b
    assert a != c
    greedy = WindowedGenerator(model, policy, batch_size=4).run(requests)
    assert a != greedy


def test_small_head_attention_equals_sdpa():
    """The original 5M shape (32 heads of size 2, 4 kv heads) uses our attention; it must match SDPA."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from laam.model.attention import SMALL_HEADS, attention_for

    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=64)
    assert attention_for(config) == SMALL_HEADS
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    x = torch.randint(0, 300, (3, 16))  # short enough for our path (longer reads go to SDPA)
    mask = torch.ones(3, 16, dtype=torch.long)
    mask[1, :5] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    requests = [Request(list(range(5 + i, 12 + 3 * i)), 100, None) for i in range(5)]
    results = {}
    for attention in ("sdpa", SMALL_HEADS):
        model.set_attn_implementation(attention)
        with torch.inference_mode():
            results[attention] = (model(input_ids=x, attention_mask=mask, position_ids=positions).logits,
                                  WindowedGenerator(model, WindowPolicy(48, 16), batch_size=3).run(requests))
    (sdpa_logits, sdpa_out), (small_logits, small_out) = results["sdpa"], results[SMALL_HEADS]
    assert torch.allclose(sdpa_logits[mask.bool()], small_logits[mask.bool()], atol=1e-5)
    assert small_out == sdpa_out


def test_drafts_change_speed_not_output(tiny, tiny_corpus, tmp_path):
    """A draft is only checked: right drafts, corrupted drafts and no draft give the same greedy output."""
    model, tokenizer, policy = tiny
    requests, bodies = file_requests(tokenizer, tiny_corpus.files)
    plain = WindowedGenerator(model, policy, batch_size=4).run(requests)
    drafted_engine = WindowedGenerator(model, policy, batch_size=4)
    right = drafted_engine.run([Request(r.prompt, r.max_new_tokens, r.stop_id, b) for r, b in zip(requests, bodies)])
    assert right == plain
    assert drafted_engine.stats.drafted == sum(len(b) for b in bodies)  # all verified, a window at a time
    assert drafted_engine.stats.forward_tokens < 3 * sum(len(b) + len(r.prompt) for r, b in zip(requests, bodies))
    corrupted = [b[:len(b) // 2] + [(t + 1) % 256 for t in b[len(b) // 2:]] for b in bodies]
    wrong = WindowedGenerator(model, policy, batch_size=4).run(
        [Request(r.prompt, r.max_new_tokens, r.stop_id, c) for r, c in zip(requests, corrupted)])
    assert wrong == plain
    # a draft with a few tokens missing in the middle: verification stops there, finds its place again, resumes
    gapped = [b[:len(b) // 2] + b[len(b) // 2 + 5:] for b in bodies]
    resync_engine = WindowedGenerator(model, policy, batch_size=4)
    assert resync_engine.run([Request(r.prompt, r.max_new_tokens, r.stop_id, g)
                              for r, g in zip(requests, gapped)]) == plain
    total = sum(len(b) for b in bodies)
    assert resync_engine.stats.drafted > total - len(bodies) * (5 + 3 * 8)
    # an untrained model: drafts are rejected at once and decoding takes over
    from transformers import AutoConfig, AutoModelForCausalLM

    torch.manual_seed(5)
    random_model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(
        Path(tokenizer.name_or_path))).eval()
    short = [Request(r.prompt, 60, r.stop_id, b) for r, b in zip(requests, bodies)]
    assert WindowedGenerator(random_model, policy).run(short) == \
        WindowedGenerator(random_model, policy).run(
            [Request(r.prompt, 60, r.stop_id) for r in short])
