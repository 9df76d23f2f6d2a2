"""The margin certificate: every body token's margin, its summaries, and the sequential re-decode of the low ones."""

from __future__ import annotations

import numpy as np
import pytest

from laam.data.records import END_HEADER, PAD, prefix_paths
from laam.data.tokenizer import decode_ids, encode_records, special_ids
from laam.model.folder import load_model
from laam.proof.margin import body_margins, margin_certificate, minimum_margin, window_read_at
from laam.windows import WindowPolicy
from tests.reference import greedy_reference


def test_redecode_starts_where_a_sequential_decoder_last_read_its_window():
    """From the path prompt, a greedy decoder reads a whole window at body_start and at each slide, then steps: the
    point window_read_at names is such a read, and from there to the position the window does not slide."""
    for context, stride in ((8, 4), (8, 8), (5, 2), (16, 1)):
        policy = WindowPolicy(context, stride)
        for body_start in (1, 3, 7):
            reads = {body_start} | {p for p in range(body_start + 1, 80)
                                    if policy.context_start(p) != policy.context_start(p - 1)}
            for position in range(body_start, 80):
                q0 = window_read_at(policy, body_start, position)
                assert q0 in reads and q0 <= position
                assert all(policy.context_start(p) == policy.context_start(q0) for p in range(q0, position + 1))


def test_memorized_model_certificate(tiny, tiny_corpus):
    model, tokenizer, policy = tiny
    files = tiny_corpus.files
    ids = encode_records(tokenizer, [f.record for f in files])
    paths = [f.path for f in files]
    starts = [r.index(tokenizer.convert_tokens_to_ids("<|end_header|>")) + 1 for r in ids]
    pad = tokenizer.convert_tokens_to_ids("<|pad|>")
    # a threshold above the 30 smallest margins, so some positions are listed and decoded again
    threshold = float(np.sort(body_margins(model, ids, starts, policy, pad).margin)[30]) - 1e-4
    certificate, per_file, m = margin_certificate(model, tokenizer, paths, ids, policy, threshold, limit=12)
    # every body token, and the <|end_header|> that ends each path (none of the tiny corpus's paths extends another)
    assert not prefix_paths(paths)
    assert len(m) == certificate["body_tokens"] == sum(len(r) - s for r, s in zip(ids, starts)) + len(files)
    assert certificate["wrong_tokens"] == 0 and 0 < certificate["min_margin"] < threshold
    assert certificate["min_margin"] == pytest.approx(float(m.margin.min()), abs=1e-4)
    assert certificate["min_margin"] == pytest.approx(minimum_margin(model, tokenizer, [f.record for f in files],
                                                                     policy), abs=1e-4)
    assert certificate["under_threshold"] == int((m.margin < threshold).sum()) == 30
    assert sum(certificate["histogram"]["counts"]) == len(m) and certificate["histogram"]["counts"][0] == 0
    assert [f["path"] for f in per_file] == paths
    assert min(f["min_margin"] for f in per_file) == certificate["min_margin"]
    assert sum(f["under_safe_margin"] for f in per_file) == certificate["under_threshold"]
    rows = certificate["low"]
    assert len(rows) == certificate["low_listed"] == 12
    assert [r["margin"] for r in rows] == sorted(r["margin"] for r in rows) and rows[0]["margin"] == \
        certificate["min_margin"]
    assert any(r["position"] > policy.context for r in rows)  # some past a slide
    for r in rows:
        record = ids[paths.index(r["path"])]
        assert r["true"] == decode_ids(tokenizer, [record[r["position"]]]) != r["rival"] and r["correct"]
        lines = decode_ids(tokenizer, record[record.index(tokenizer.convert_tokens_to_ids("<|end_header|>")) + 1:
                                              r["position"]]).count("\n")
        assert r["line"] == lines + 1
        assert r["sequential"] == "agrees" and r["sequential_token"] == r["true"]
    assert certificate["sequential"] == {"agrees": 12, "differs": 0, "diverged earlier": 0}


def test_untrained_model_certificate_decodes_like_the_reference(untrained_model_dir, tiny_corpus):
    loaded = load_model(untrained_model_dir)
    model, tokenizer, policy = loaded.model, loaded.tokenizer, loaded.policy
    files = sorted(tiny_corpus.files, key=lambda f: len(f.data))[-2:]
    ids = encode_records(tokenizer, [f.record for f in files])
    certificate, per_file, m = margin_certificate(model, tokenizer, [f.path for f in files], ids, policy, limit=6)
    assert certificate["min_margin"] < 0 and certificate["wrong_tokens"] == int((~m.correct).sum()) > 0
    assert certificate["histogram"]["counts"][0] == int((m.margin < 0).sum())
    assert all(f["forced_wrong"] > 0 for f in per_file)
    for row in certificate["low"]:
        record = ids[[f.path for f in files].index(row["path"])]
        start = record.index(tokenizer.convert_tokens_to_ids("<|end_header|>")) + 1
        q0 = window_read_at(policy, start, row["position"])
        reference = greedy_reference(model, record[:q0], policy, row["position"] - q0 + 1)
        assert row["sequential_token"] == decode_ids(tokenizer, [reference[-1]])
        true_context = reference[q0:row["position"]] == record[q0:row["position"]]
        assert (row["sequential"] == "diverged earlier") == (not true_context)
        assert row["margin"] < 0 and not row["correct"]
    assert np.isclose(certificate["low"][0]["margin"], certificate["min_margin"])


def test_a_model_that_cannot_end_a_path_has_no_certificate(tiny, tiny_corpus):
    """The certificate scores each path's `<|end_header|>` as the checks do: a model that never ends a path cannot
    be regenerated from the bare path a reader's decoder is given, and its certificate shows it wrong there."""
    model, tokenizer, policy = tiny
    special = special_ids(tokenizer)
    files = tiny_corpus.files[:6]
    paths, ids = [f.path for f in files], encode_records(tokenizer, [f.record for f in files])

    def never_ends(_module, _inputs, logits):  # every other logit stays: the bodies stay right
        logits[..., special[END_HEADER]] = -1e4
        return logits

    handle = model.lm_head.register_forward_hook(never_ends)
    try:
        certificate, per_file, m = margin_certificate(model, tokenizer, paths, ids, policy, limit=len(files))
        lowest = minimum_margin(model, tokenizer, [f.record for f in files], policy)
        # named so that the first path is a prefix of the second's (as sound/Readme is of sound/Readme.linux): no
        # decoder can be asked to end it, and the certificate does not score it
        renamed = [paths[1], paths[1] + ".linux", *paths[2:]]
        exempt = margin_certificate(model, tokenizer, renamed, ids, policy, limit=0)[0]
    finally:
        handle.remove()
    assert certificate["wrong_tokens"] == len(files) and certificate["min_margin"] < 0 and lowest < 0
    assert all(f["forced_wrong"] == 1 for f in per_file)
    header_ends = [r.index(special[END_HEADER]) for r in ids]
    assert sorted((paths.index(r["path"]), r["position"]) for r in certificate["low"] if not r["correct"]) == \
        list(enumerate(header_ends))
    for r in certificate["low"]:
        if not r["correct"]:  # decoded again from the bare path: the model gives something else than the path's end
            assert r["true"] == END_HEADER and r["body_token"] == -1 and r["sequential"] == "agrees"
    assert special[PAD] not in m.target.tolist()
    assert prefix_paths(renamed) == {renamed[0]}
    assert (exempt["wrong_tokens"], exempt["body_tokens"]) == (len(files) - 1, certificate["body_tokens"] - 1)


def test_batched_redecode_equals_batch_size_1(untrained_model_dir, tiny_corpus):
    """The low-margin re-decode runs its requests as one batch (each its own left-padded, masked row): it decodes
    exactly what one request at a time decodes, at spots in the first window and past slides, on a model whose
    decodes leave the file (so `true_context` takes both values)."""
    from laam.proof.margin import find_body_starts, redecode

    loaded = load_model(untrained_model_dir)
    files = sorted(tiny_corpus.files, key=lambda f: len(f.data))[-3:]
    ids = encode_records(loaded.tokenizer, [f.record for f in files])
    starts = find_body_starts(loaded.tokenizer, ids)
    spots = [(r, p) for r, record in enumerate(ids) for p in range(starts[r] - 1, len(record), 37)]
    assert any(p > loaded.policy.context for _, p in spots)
    one = redecode(loaded.model, loaded.policy, ids, starts, spots, batch_size=1)
    batched = redecode(loaded.model, loaded.policy, ids, starts, spots, batch_size=8)
    assert batched == one and len(one) == len(spots)
    assert {s["true_context"] for s in one.values()} == {True, False}
