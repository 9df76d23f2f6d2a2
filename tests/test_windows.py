from pathlib import Path

from laam.windows import WindowPolicy, default_stride


def test_every_position_scored_once_with_the_generation_context():
    for length in range(1, 80):
        for context in (1, 2, 5, 8, 16):
            for stride in range(1, context + 1):
                policy = WindowPolicy(context, stride)
                spans = policy.windows(length)
                assert all(end - start - 1 <= context for start, end, _ in spans)
                for position in range(1, length):
                    hits = [w for w in spans if w[2] <= position < w[1]]
                    assert len(hits) == 1, (length, context, stride, position)
                    start = hits[0][0]
                    assert start == policy.context_start(position)
                    assert 0 < position - start <= context
                    # the window slides right after the last position it predicts
                    assert policy.window_end(position) >= position
                    assert policy.context_start(policy.window_end(position) + 1) != start


def test_examples():
    assert WindowPolicy(8, 4).windows(20) == [(0, 9, 1), (4, 13, 9), (8, 17, 13), (12, 20, 17)]
    assert WindowPolicy(8, 4).windows(5) == [(0, 5, 1)]
    assert default_stride(512) == 256


def test_every_consumer_of_the_rule_sees_the_same_context(tiny_model_dir, tiny_corpus):
    """Training windows, teacher forcing (engine.forcing), the compressor's lockstep engine, the batched
    generator and the plain reference decoder all read each position's context through WindowPolicy: on the
    same record they give the same next-token logits; on a free run, the same tokens."""
    import numpy as np
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from laam.data.records import PAD
    from laam.data.tokenizer import encode_records, load_tokenizer, special_ids
    from laam.data.tokens import TokenCache
    from laam.engine import Request, WindowedGenerator
    from laam.engine.forcing import window_logits
    from laam.engine.lockstep import step_in_lockstep
    from laam.model.info import read_model_info
    from laam.train.batches import WindowSet
    from tests.reference import greedy_reference

    torch.set_num_threads(1)
    policy = read_model_info(tiny_model_dir).policy
    tokenizer = load_tokenizer(tiny_model_dir)
    torch.manual_seed(3)  # an untrained model: its predictions depend on every token of the context
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny_model_dir)).eval()
    record = max(tiny_corpus.files, key=lambda f: len(f.data))
    ids = encode_records(tokenizer, [record.record])[0]
    assert len(ids) > 3 * policy.context

    forced = torch.full((len(ids), len(tokenizer)), float("nan"))
    for first, logits in window_logits(model, ids, policy):
        forced[first:first + len(logits)] = logits

    one = TokenCache(Path("."), np.array(ids), [record.path], np.array([0]), np.array([len(ids)]), np.array([1]))
    windows = WindowSet(one, policy)
    batch = windows.batch(range(len(windows)), special_ids(tokenizer)[PAD])
    with torch.inference_mode():
        logits = model(input_ids=batch["input_ids"]).logits
    trained = torch.full_like(forced, float("nan"))
    for row, (_, start, _, _) in enumerate(windows.rows.tolist()):
        scored = batch["labels"][row] != -100
        positions = start + 1 + torch.nonzero(scored).flatten()
        trained[positions] = logits[row, scored]

    stepped = torch.full_like(forced, float("nan"))

    def keep(p, rows, probs):
        stepped[p] = torch.from_numpy(probs[0]).log()
        return [ids[p]]

    with torch.inference_mode():
        step_in_lockstep(model, torch.tensor([ids]), [1], [len(ids)], policy, keep)

    assert torch.allclose(trained[1:], forced[1:], atol=1e-4)
    assert torch.allclose(stepped[1:].log_softmax(-1), forced[1:].log_softmax(-1), atol=1e-3)
    assert (stepped[1:].argmax(-1) == forced[1:].argmax(-1)).float().mean() > 0.99

    prompt = ids[:40]
    engine = WindowedGenerator(model, policy).run([Request(prompt, 3 * policy.context)])[0]
    assert prompt + engine == greedy_reference(model, prompt, policy, 3 * policy.context)
