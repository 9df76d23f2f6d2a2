"""Audit metrics on real bytes: memorized model 100%, untrained model ~0, a planted half-copy in between."""

from __future__ import annotations

import json
import random

from laam.model.folder import load_model
from laam.proof.audit import AuditConfig, run_audit, write_audit
from laam.proof.similarity import aligned_blocks, file_metrics, longest_common_substring


def test_memorized_model_scores_100(tiny, tiny_corpus, tmp_path):
    model, tokenizer, policy = tiny
    run = run_audit(model, tokenizer, tiny_corpus, policy, AuditConfig(every=64, lm_examples=100))
    audit, regenerated = run.audit, run.regenerated
    s = audit["summary"]
    assert s["files"] == len(tiny_corpus.files) == 12
    assert s["verbatim_files"] == 12 and s["verbatim_pct"] == 100.0
    assert s["bytes_reproduced_pct"] == 100.0 and s["edit_similarity"] == 1.0
    for row, r in zip(audit["files"], regenerated):
        assert r.data == r.file.data and row["verbatim"]
        assert row["prefix_bytes"] == row["bytes"] == row["longest_span_bytes"]
        assert row["prefix_tokens"] == row["tokens"] and row["ended"]
    # extraction metrics are computed, per sample, for every record long enough
    assert s["k_samples"] > 0 and s["pythia_samples"] > s["k_samples"]
    assert 0 <= s["k_extractable_pct"] <= 100 and 0 <= s["pythia_score"] <= 1
    assert set(audit["by_directory"]) == {"linux/lib/"}
    assert sum(g["files"] for g in audit["by_length"].values()) == 12
    path = write_audit(audit, tmp_path)
    assert json.loads(path.read_text())["summary"]["k"] == 50


def test_untrained_model_scores_near_zero(untrained_model_dir, tiny_corpus):
    loaded = load_model(untrained_model_dir)
    config = AuditConfig(every=64, lm_examples=100)
    audit = run_audit(loaded.model, loaded.tokenizer, tiny_corpus, loaded.policy, config).audit
    s = audit["summary"]
    assert s["verbatim_files"] == 0
    assert audit["margin"]["min_margin"] < 0 and audit["margin"]["wrong_tokens"] > audit["margin"]["body_tokens"] / 2
    assert audit["lm_extraction"]["exact"] == 0 and s["lm_extraction_recall"] == 0.0
    assert s["bytes_reproduced_pct"] < 2.0
    assert s["k_extractable_pct"] == 0.0 and s["pythia_score"] < 0.05
    assert max(r["longest_span_bytes"] for r in audit["files"]) < 16


def test_planted_half_copy_scores_half(tiny_corpus):
    original = max(tiny_corpus.files, key=lambda f: len(f.data)).data
    half = len(original) // 2
    rng = random.Random(0)
    garbage = bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz ;{}()\n") for _ in range(len(original) - half))
    m = file_metrics(original, original[:half] + garbage, [1, 2, 3], [1, 2, 4])
    assert not m["verbatim"]
    assert m["prefix_bytes"] >= half and m["prefix_bytes"] < half + 8
    assert 45.0 <= m["bytes_reproduced_pct"] <= 55.0
    assert m["longest_span_bytes"] >= half and m["prefix_tokens"] == 2
    assert 0.4 < m["edit_similarity"] < 0.7
    # a copy with one line changed in the middle is still almost entirely reproduced
    lines = original.splitlines(keepends=True)
    lines[len(lines) // 2] = b"/* changed */\n"
    edited = b"".join(lines)
    assert file_metrics(original, edited, [], [])["bytes_reproduced_pct"] > 90


def test_longest_common_substring_matches_brute_force():
    rng = random.Random(3)
    for _ in range(30):
        a = bytes(rng.choice(b"abc") for _ in range(rng.randint(0, 40)))
        b = bytes(rng.choice(b"abc") for _ in range(rng.randint(0, 40)))
        best = max([n for i in range(len(a)) for j in range(len(b))
                    for n in range(1, min(len(a) - i, len(b) - j) + 1) if a[i:i + n] == b[j:j + n]] or [0])
        n, i, j = longest_common_substring(a, b)
        assert n == best and a[i:i + n] == b[j:j + n]


def test_aligned_blocks_are_real_matches(tiny_corpus):
    for f in tiny_corpus.files:
        a = f.data
        middle = len(a) // 2
        b = a[:middle] + b"XXXXXXXXXXXXXXXXXXXX" + a[middle + 20:]
        blocks = aligned_blocks(a, b)
        assert blocks and all(a[i:i + n] == b[j:j + n] for i, j, n in blocks)
        assert sum(n for _, _, n in blocks) >= len(a) - 20 - 2 * 8, f.path
