"""The sampling certificate against real sampling with stock transformers: predicted P(verbatim) and the observed
share of verbatim samples agree within the binomial interval, at settings where the prediction is far from 0 and 1
(so a wrong temperature, a missed top-k/top-p cut or a wrong context would show); and the audit's one-pass
log-probabilities against the one-window-at-a-time reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from laam.proof.sampling import SamplingSetting, folder_settings, sampling_certificate, verbatim_log_probability

SAMPLES = 400
Z = 3.29  # two-sided 99.9%: a correct prediction fails about once in a thousand runs


def wilson(successes: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (written out: scipy is not a dependency)."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


@pytest.fixture(scope="module")
def stock(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32, use_safetensors=True)
    return model.eval(), AutoTokenizer.from_pretrained(str(tiny_model_dir))


def _record(tokenizer, f):
    from laam.data.records import END_FILE, path_prompt
    from laam.data.tokenizer import encode_records, special_ids

    prompt, body = encode_records(tokenizer, [path_prompt(f.path), f.text])
    return prompt, body + [special_ids(tokenizer)[END_FILE]]


@pytest.mark.parametrize("top_k,top_p", [(None, None), (3, 0.9)])
def test_predicted_verbatim_rate_matches_stock_sampling(stock, tiny_corpus, top_k, top_p):
    from tests.tiny_model import POLICY

    model, tokenizer = stock
    f = next(f for f in tiny_corpus.files if f.path == "linux/lib/execve.c")
    prompt, target = _record(tokenizer, f)
    assert len(prompt) + len(target) <= POLICY.context  # within the context, stock generate reads what laam reads
    grid = [SamplingSetting(f"T{t}", False, t, top_k, top_p) for t in (0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)]
    logs = verbatim_log_probability(model, prompt + target, len(prompt), POLICY, grid)
    chosen = [(s, math.exp(x)) for s, x in zip(grid, logs) if 0.2 <= math.exp(x) <= 0.9]
    assert chosen, f"no temperature on the grid gives 0.2 <= P <= 0.9: {[math.exp(x) for x in logs]}"
    setting, p = min(chosen, key=lambda c: abs(c[1] - 0.5))
    torch.manual_seed(0)
    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt] * SAMPLES), attention_mask=torch.ones(SAMPLES, len(prompt),
                             dtype=torch.long), do_sample=True, temperature=setting.temperature,
                             top_k=top_k or 0, top_p=top_p or 1.0, max_new_tokens=len(target))
    observed = sum(row[len(prompt):len(prompt) + len(target)].tolist() == target for row in out)
    low, high = wilson(observed, SAMPLES)
    assert low <= p <= high, f"predicted {p:.3f} at {setting.describe()}, observed {observed}/{SAMPLES}"


def test_certificate_of_the_tiny_model(tiny_model_dir, tiny_corpus, stock):
    from tests.tiny_model import POLICY

    model, tokenizer = stock
    settings = folder_settings(model.generation_config)
    assert [s.name for s in settings] == ["original", "defaults"] and settings[1].greedy  # the folder is greedy
    assert settings[0].temperature == 0.2
    cert = sampling_certificate(model, tokenizer, tiny_corpus.files, POLICY, settings)
    assert cert["settings"]["defaults"]["expected_verbatim_files"] == len(tiny_corpus.files)  # memorized: greedy = 1
    original = [r["original"] for r in cert["files"]]
    assert all(0 < p <= 1 for p in original)
    assert cert["settings"]["original"]["expected_verbatim_files"] == pytest.approx(sum(original))
    hot = sampling_certificate(model, tokenizer, tiny_corpus.files, POLICY, [SamplingSetting("hot", False, 3.0)])
    assert hot["settings"]["hot"]["expected_verbatim_files"] < cert["settings"]["original"]["expected_verbatim_files"]


def test_audit_report_and_card_carry_the_certificate(tiny_model_dir, tiny_corpus, tmp_path):
    from laam.proof.audit import AuditConfig, audit_model
    from laam.publish.sections import sampling_section

    result = audit_model(tiny_model_dir, AuditConfig(extraction=False, certificate=False), out_dir=tmp_path)
    c = result.audit["sampling"]
    assert len(c["files"]) == len(tiny_corpus.files) == len(result.audit["files"])
    assert result.audit["summary"]["expected_verbatim_sampled"]["original"] == pytest.approx(
        sum(r["p_verbatim_original"] for r in result.audit["files"]))
    assert result.audit["summary"]["expected_verbatim_sampled"]["defaults"] == result.audit["summary"]["verbatim_files"]
    page = result.report_path.read_text()
    assert 'id="sampling"' in page and "temperature 0.2" in page
    section = sampling_section(result.audit)
    assert "### Sampling certificate" in section and f"of {len(tiny_corpus.files)}" in section


@pytest.mark.parametrize("trained", [True, False])
def test_one_pass_equals_one_window_at_a_time(tiny_model_dir, untrained_model_dir, tiny_corpus, trained):
    """The audit's sampling certificate reads its log-probabilities from the margin certificate's pass (padded
    batches of windows, the LM head on chunks of scored positions) or, without it, from a pass of its own; per file
    and setting both equal verbatim_log_probability's sum (one unpadded window at a time, on the path prompt, the
    text and <|end_file|> encoded apart). Tolerance on the natural log: 1e-6 relative or 1e-5 absolute, the
    float32 rounding of padded batched against unbatched logits summed over a file's tokens (measured on these
    models: at most 2.3e-6 absolute, 1.6e-8 relative); -inf (greedy misses, targets cut by top-k/top-p) must be
    -inf on both. The trained model is sure of every token; the untrained one is not, so top-k/top-p cuts, the
    greedy column and the `<|end_header|>` left out of the sum all show."""
    from laam.data.tokenizer import encode_records
    from laam.model.folder import load_model
    from laam.proof.margin import body_margins, find_body_starts, margin_certificate
    from laam.proof.sampling import sampling_columns, sampling_from_margins

    loaded = load_model(tiny_model_dir if trained else untrained_model_dir)
    model, tokenizer, policy = loaded.model, loaded.tokenizer, loaded.policy
    files = tiny_corpus.files
    settings = folder_settings(model.generation_config) + [
        SamplingSetting("hot", False, 3.0), SamplingSetting("cut", False, 0.7, 3, 0.9)]
    paths, records = [f.path for f in files], encode_records(tokenizer, [f.record for f in files])
    starts = find_body_starts(tokenizer, records)
    expected = []
    for f, record, start in zip(files, records, starts):
        prompt, target = _record(tokenizer, f)
        assert record == prompt + target and start == len(prompt)  # the margin pass reads what a sampler draws
        expected.append(verbatim_log_probability(model, prompt + target, len(prompt), policy, settings))
    _, _, m = margin_certificate(model, tokenizer, paths, records, policy, limit=0, batch_size=5,
                                 columns=sampling_columns(settings))
    assert m.columns.shape == (len(m), len(settings))
    pad = tokenizer.convert_tokens_to_ids("<|pad|>")
    plain = body_margins(model, records, starts, policy, pad, 5, paths=paths)
    assert plain.columns is None and np.array_equal(plain.margin, m.margin)  # the columns change no margin
    shared = sampling_from_margins(paths, m, starts, settings)
    alone = sampling_certificate(model, tokenizer, files, policy, settings, batch_size=7)
    for cert in (shared, alone):
        assert [r["path"] for r in cert["files"]] == paths
        for row, logs in zip(cert["files"], expected):
            for s, x in zip(settings, logs):
                got = row[f"{s.name}_log10"]
                if x == -math.inf:
                    assert got is None and row[s.name] == 0.0, (row["path"], s.name)
                else:
                    assert got * math.log(10) == pytest.approx(x, rel=1e-6, abs=1e-5), (row["path"], s.name)
    missed = [x == -math.inf for logs in expected for x in logs]
    assert any(missed) != trained  # the untrained model exercises the -inf case, the trained one never misses
    greedy = [s.name for s in settings if s.greedy]
    assert greedy and all(row[g] == (1.0 if trained else 0.0) for row in shared["files"] for g in greedy)


def test_audit_runs_one_teacher_forced_pass(untrained_model_dir, tiny_corpus, monkeypatch):
    """run_audit with both certificates runs one teacher-forced pass, whose logits give the sampling certificate
    too; with either certificate off it runs one pass for the other. The `sampling` section is the same either way
    (on an untrained model: finite and -inf log-probabilities both appear)."""
    import laam.proof.margin
    from laam.model.folder import load_model
    from laam.proof.audit import AuditConfig, run_audit

    passes = []
    forcing = laam.proof.margin.iter_margins

    def counted(*args, **kwargs):
        passes.append(kwargs.get("columns") is not None)
        return forcing(*args, **kwargs)

    monkeypatch.setattr(laam.proof.margin, "iter_margins", counted)
    loaded = load_model(untrained_model_dir)

    def audit(**switches):
        passes.clear()
        result = run_audit(loaded.model, loaded.tokenizer, tiny_corpus, loaded.policy,
                           AuditConfig(extraction=False, **switches)).audit
        return result, list(passes)

    both, both_passes = audit()
    alone, alone_passes = audit(certificate=False)
    margins_only, margins_passes = audit(sampling=False)
    assert (both_passes, alone_passes, margins_passes) == ([True], [True], [False])
    assert both["margin"] == margins_only["margin"] and alone["margin"] is None and margins_only["sampling"] is None
    assert [r["path"] for r in both["sampling"]["files"]] == [r["path"] for r in alone["sampling"]["files"]]
    for key in ("original_log10", "defaults_log10"):
        ours, theirs = ([r[key] for r in c["sampling"]["files"]] for c in (both, alone))
        assert [x is None for x in ours] == [x is None for x in theirs]
        assert [x for x in ours if x is not None] == pytest.approx([x for x in theirs if x is not None], rel=1e-6)
    assert any(r["defaults_log10"] is None for r in both["sampling"]["files"])
    assert all(r["original_log10"] is not None for r in both["sampling"]["files"])
