"""The sampling certificate against real sampling with stock transformers: predicted P(verbatim) and the observed
share of verbatim samples agree within the binomial interval, at settings where the prediction is far from 0 and 1
(so a wrong temperature, a missed top-k/top-p cut or a wrong context would show)."""

from __future__ import annotations

import math

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
