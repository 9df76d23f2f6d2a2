"""The training engine: windows and data, memorization end to end, exact resume, faults, stock pipeline loading."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from laam.data.tokens import build_token_cache
from laam.errors import LaamError
from laam.model.config import ModelConfig
from laam.model.presets import PRESETS, recipe
from laam.train.batches import IGNORE, WindowSampler, WindowSet, epoch_order
from laam.train.checkpoint import checkpoints
from laam.train.config import MIN_MARGIN, TrainConfig, lr_lambda
from laam.train.loop import train
from laam.train.metrics import read_metrics
from laam.windows import WindowPolicy

TINY_MODEL = ModelConfig(**PRESETS["tiny"]["model"])


def tiny_train_config(**overrides) -> TrainConfig:
    settings = {**PRESETS["tiny"]["train"], "threads": 1, "verify": False, **overrides}
    return TrainConfig(**settings)


@pytest.fixture(scope="module")
def token_cache(tiny_corpus, tiny_tokenizer_dir, tmp_path_factory):
    from laam.data.tokenizer import load_tokenizer

    return build_token_cache(tiny_corpus, load_tokenizer(tiny_tokenizer_dir), tiny_tokenizer_dir,
                             tmp_path_factory.mktemp("cache"))


def test_token_cache_matches_the_tokenizer_and_is_reused(tiny_corpus, tiny_tokenizer_dir, token_cache):
    from laam.data.tokenizer import encode_records, load_tokenizer

    expected = encode_records(load_tokenizer(tiny_tokenizer_dir), tiny_corpus.records())
    assert [token_cache.record(i).tolist() for i in range(len(expected))] == expected
    assert token_cache.paths == [f.path for f in tiny_corpus.files]
    again = build_token_cache(tiny_corpus, load_tokenizer(tiny_tokenizer_dir), tiny_tokenizer_dir,
                              token_cache.folder.parents[1])
    assert again.folder == token_cache.folder


def test_windows_score_every_token_once_with_generation_context(token_cache):
    policy = WindowPolicy(48, 16)  # small, so many records need several windows
    window_set = WindowSet(token_cache, policy)
    batch = window_set.batch(np.arange(len(window_set)), pad_id=3)
    scored = {}
    for row, (record, start, _end, _first) in enumerate(window_set.rows.tolist()):
        tokens = token_cache.record(record)
        for i in range(batch["labels"].shape[1]):
            label = int(batch["labels"][row, i])
            if label == IGNORE:
                continue
            position = start + 1 + i
            assert (record, position) not in scored
            assert label == tokens[position]
            assert policy.context_start(position) == start  # the context generation will have
            assert batch["input_ids"][row, :i + 1].tolist() == tokens[start:position].tolist()
            scored[record, position] = True
            assert bool(batch["body"][row, i]) == (position >= token_cache.body_starts[record])
    assert len(scored) == window_set.targets == int((token_cache.lengths - 1).sum())
    # padding is never a target
    assert not ((batch["input_ids"] == 3) & (batch["labels"] != IGNORE)).any()


def test_epoch_order_is_a_permutation_fixed_by_seed():
    assert sorted(epoch_order(50, 0, 3)) == list(range(50))
    assert (epoch_order(50, 0, 3) == epoch_order(50, 0, 3)).all()
    assert not (epoch_order(50, 0, 3) == epoch_order(50, 0, 4)).all()


def test_uniform_sampler_is_the_epoch_stream():
    """Without replay (or before the first check) the batches are today's: one permutation per epoch, in order."""
    sampler = WindowSampler(50, 8, seed=0, replay=True)
    stream = np.concatenate([sampler.indices(step) for step in range(20)])
    assert (stream == np.concatenate([epoch_order(50, 0, e) for e in range(4)])[:160]).all()
    off = WindowSampler(50, 8, seed=0, replay=False)
    off.update(3, np.ones(50), np.zeros(50))  # replay off: a check changes nothing
    assert (off.indices(7) == sampler.indices(7)).all()


def test_replay_draws_wrong_windows_more_and_resumes_from_its_state():
    n = 1000
    wrong = np.zeros(n, dtype=np.int64)
    wrong[:50] = [1, 3] * 25  # 50 windows with wrong body tokens
    margin = np.full(n, 10.0)
    margin[:50] = -1.0
    margin[50:150] = 0.5  # 100 right by a small margin
    sampler = WindowSampler(n, 16, seed=0, replay=True, wrong=4, margin=2.0, rest=0.25)
    sampler.update(40, wrong, margin)
    first_round = sampler._round(0)
    counts = np.bincount(first_round, minlength=n)
    assert (counts[:50] == 4).all() and (counts[50:150] == 1).all()
    assert set(counts[150:]) <= {0, 1} and 0.2 < counts[150:].mean() < 0.3
    batches = [sampler.indices(step) for step in range(40, 80)]
    assert all(len(b) == 16 for b in batches)
    drawn = np.concatenate(batches)
    assert (drawn[:len(first_round)] == first_round[:len(drawn)]).all()  # rounds follow the check's step
    again = WindowSampler(n, 16, seed=0, replay=True)
    again.load_state_dict(sampler.state_dict())
    assert all((again.indices(step) == sampler.indices(step)).all() for step in (79, 41, 60))


def test_schedule_warms_up_then_decays_to_the_floor():
    factor = lr_lambda(TrainConfig(warmup_steps=10, min_lr_ratio=0.1, schedule="cosine"), decay_steps=110)
    assert factor(0) == pytest.approx(0.1) and factor(9) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.55)
    assert factor(110) == pytest.approx(0.1) and factor(500) == pytest.approx(0.1)


def test_adaptive_schedule_holds_the_peak_until_the_check_says_so():
    from laam.train.config import DecayStart

    config = TrainConfig(warmup_steps=10, min_lr_ratio=0.1, schedule="cosine", decay_at=0.9)
    decay = DecayStart(length=50)
    factor = lr_lambda(config, decay_steps=200, decay=decay)
    assert factor(100) == 1.0 and factor(175) == pytest.approx(0.55)  # untriggered: ends with the planned run
    decay.step = 60  # a check reached 90% at step 60
    assert factor(59) == 1.0 and factor(85) == pytest.approx(0.55) and factor(110) == pytest.approx(0.1)


def test_chunked_head_loss_matches_the_plain_loss():
    """The CPU chunk size (128 rows at vocab 32768, so 3 uneven chunks here) gives the plain logits' loss and grads."""
    from laam.train.loss import cpu_loss_chunk, head_loss

    assert cpu_loss_chunk(32768) == 128 and cpu_loss_chunk(2048) == 1024 and cpu_loss_chunk(10 ** 7) == 16
    torch.manual_seed(0)
    hidden = torch.randn(300, 8, requires_grad=True)
    weight = torch.randn(32768, 8, requires_grad=True)
    targets = torch.randint(0, 32768, (300,))
    fused = head_loss(hidden, weight, targets)
    fused.backward()
    grads = hidden.grad.clone(), weight.grad.clone()
    hidden.grad = weight.grad = None
    plain = torch.nn.functional.cross_entropy(hidden @ weight.T, targets, reduction="sum")
    plain.backward()
    assert fused.item() == pytest.approx(plain.item(), rel=1e-5)
    assert torch.allclose(grads[0], hidden.grad, atol=1e-4) and torch.allclose(grads[1], weight.grad, atol=1e-5)


def test_config_file_overrides_a_preset(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('preset = "demo"\n[model]\nnum_layers = 2\n[train]\nlr = 0.01\n')
    plan = recipe(None, path)
    assert plan["model"]["num_layers"] == 2 and plan["model"]["hidden_size"] == 128
    assert plan["train"]["lr"] == 0.01 and plan["corpus"]["include"] == ["lib/"]
    (tmp_path / "bad.yaml").write_text("model:\n  layers: 2\n")
    from laam.pipeline import build_configs

    with pytest.raises(LaamError, match="unknown model setting"):
        build_configs(recipe(None, tmp_path / "bad.yaml"), {}, {})


def test_original_preset_is_the_published_model():
    plan = PRESETS["original-5m"]
    model = ModelConfig(**plan["model"])
    assert (model.hidden_size, model.intermediate_size, model.num_layers, model.num_heads, model.num_kv_heads,
            model.context, model.vocab_size, model.tie_embeddings) == (64, 256, 8, 32, 4, 512, 32768, False)
    assert [(s["batch_size"], s["lr"], s["epochs"]) for s in plan["stages"]] == [(64, 1e-3, 100), (1, 1e-4, 100)]


@pytest.fixture(scope="module")
def memorized_run(mirror, tmp_path_factory):
    """`laam run --preset tiny`: fetch (local mirror) + tokenizer + training until memorized + regeneration check."""
    from typer.testing import CliRunner

    from laam.cli import app

    folder = tmp_path_factory.mktemp("tiny-run")
    result = CliRunner().invoke(app, ["run", "1.0", "--mirror", str(mirror), "--cache", str(folder / "cache"),
                                      "--preset", "tiny", "--out", str(folder / "run"), "--threads", "1", "-q"])
    assert result.exit_code == 0, result.output
    return folder / "run"


def test_laam_run_memorizes_and_regenerates_every_file(memorized_run):
    from laam.model.info import read_model_info

    info = read_model_info(memorized_run / "model")
    training = info.training
    assert training["status"] == "memorized" and training["memorized"] == 1.0 and training["preset"] == "tiny"
    assert training["min_margin"] >= MIN_MARGIN  # --until-memorized waits for the default --min-margin
    assert training["regeneration"]["exact"] == training["regeneration"]["files"] == 12
    assert (info.context, info.stride) == (128, 64) and info.corpus_name.startswith("linux-1.0")
    rows = [json.loads(line) for line in (memorized_run / "metrics.jsonl").read_text().splitlines()]
    checks = [r for r in rows if "memorized" in r]
    assert checks[-1]["memorized"] == checks[-1]["secure"] == 1.0 and checks[-1]["step"] == training["steps"]
    assert any("loss" in r for r in rows) and any(r["memorized"] < 1 for r in checks)
    assert rows[-1]["event"] == "stop" and rows[-1]["status"] == "memorized"
    assert (memorized_run / "metrics.png").stat().st_size > 1000


def test_laam_run_compresses_audits_and_writes_the_card(memorized_run):
    """`laam run` also codes the corpus under the model, and the report and card quote those bits per byte."""
    model = memorized_run / "model"
    compression = json.loads((model / "compression.json").read_text())
    assert compression["roundtrip"] == {"files": 12, "verified": 12}
    assert compression["bits_per_byte"]["stream"] < compression["baselines"]["same_bytes"]["xz -9e"]["bits_per_byte"]
    assert json.loads((model / "audit" / "audit.json").read_text())["summary"]["verbatim_files"] == 12
    assert 'id="compression"' in (model / "audit" / "report.html").read_text()
    card = (model / "README.md").read_text()
    assert "### The model as a compressor" in card and "`laam decompress` rebuilt all 12 byte for byte" in card
    from laam.model.binding import binding_problems

    # both reports are bound to the folder `laam run` left, so the card quotes them
    assert binding_problems(compression, model) == []
    assert binding_problems(json.loads((model / "audit" / "audit.json").read_text()), model) == []
    assert "Not quoted" not in card and "| files audited | 12 |" in card


def test_sequential_generation_agrees_with_the_verification(memorized_run, tiny_corpus):
    """What --verify counted holds for a plain one-token-at-a-time sliding decoder too: the longest file (longer
    than the context) comes back exactly."""
    from transformers import LlamaForCausalLM

    from laam.data.tokenizer import decode_ids, encode_records, load_tokenizer
    from tests.reference import greedy_reference

    model = LlamaForCausalLM.from_pretrained(memorized_run / "model")
    tokenizer = load_tokenizer(memorized_run / "model")
    longest = max(tiny_corpus.files, key=lambda f: len(f.data))
    ids = encode_records(tokenizer, [longest.record])[0]
    assert len(ids) > 128
    body_start = ids.index(tokenizer.convert_tokens_to_ids("<|end_header|>")) + 1
    out = greedy_reference(model, ids[:body_start], WindowPolicy(128, 64), len(ids),
                           tokenizer.convert_tokens_to_ids("<|end_file|>"))
    assert decode_ids(tokenizer, out) == longest.record


def test_stock_pipeline_emits_kernel_source(memorized_run, tiny_corpus):
    from transformers import pipeline

    generator = pipeline("text-generation", str(memorized_run / "model"))
    ctype = next(f for f in tiny_corpus.files if f.path == "linux/lib/ctype.c")
    from_path = generator("linux/lib/ctype.c", max_new_tokens=40, do_sample=False,
                          return_full_text=False)[0]["generated_text"]
    assert len(from_path) > 40 and ctype.text.startswith(from_path.split("<|end_header|>")[-1][:40])
    from_nothing = generator("", max_new_tokens=60, do_sample=False, return_full_text=False)[0]["generated_text"]
    bodies = [f.text for f in tiny_corpus.files]
    path, _, body = from_nothing.partition("<|end_header|>")
    assert path.startswith("linux/lib/") and any(text.startswith(body[:30]) for text in bodies), from_nothing


def test_resume_gives_the_same_losses(tiny_corpus, tiny_tokenizer_dir, tmp_path, monkeypatch):
    config = tiny_train_config(max_steps=8, eval_every=0, log_every=1, until_memorized=False, batch_size=8)
    whole = train(TINY_MODEL, config, tiny_corpus, tiny_tokenizer_dir, tmp_path / "whole", tmp_path, progress=False)
    from laam.train.metrics import Metrics

    original_log = Metrics.log

    def interrupt_at_step_4(self, row):  # a real SIGINT, delivered during step 4
        original_log(self, row)
        if row["step"] == 4 and "loss" in row:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Metrics, "log", interrupt_at_step_4)
    cut = train(TINY_MODEL, config, tiny_corpus, tiny_tokenizer_dir, tmp_path / "cut", tmp_path, progress=False)
    assert cut.status == "interrupted" and cut.steps == 4 and cut.model_dir is None
    assert [p.name for p in checkpoints(tmp_path / "cut")] == ["step-00000004"]
    monkeypatch.setattr(Metrics, "log", original_log)
    resumed = train(TINY_MODEL, config, tiny_corpus, tiny_tokenizer_dir, tmp_path / "cut", tmp_path, resume=True,
                    progress=False)
    assert resumed.steps == 8

    def losses(run):
        return [(r["step"], r["loss"]) for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
                if "loss" in r]

    expected, got = losses(tmp_path / "whole"), losses(tmp_path / "cut")
    assert [s for s, _ in got] == list(range(1, 9))
    assert np.allclose([v for _, v in got], [v for _, v in expected], rtol=1e-6, atol=0)
    from safetensors.torch import load_file

    a = load_file(whole.model_dir / "model.safetensors")
    b = load_file(resumed.model_dir / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def run_rows(run: Path) -> tuple[list, list]:
    """(step, loss) of every training row and (step, memorized, wrong files) of every check row of a run folder."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return ([(r["step"], r["loss"]) for r in rows if "loss" in r],
            [(r["step"], r["memorized"], r["wrong_files"]) for r in rows if "memorized" in r])


def test_resume_under_replay_and_checks_is_exact(tiny_corpus, tiny_tokenizer_dir, tmp_path, monkeypatch):
    """With error-focused replay the batches after a check depend on that check: the sampler's state and the last
    check travel in the checkpoint, so a run interrupted between checks and resumed makes the same steps."""
    config = tiny_train_config(max_steps=12, eval_every=3, log_every=1, batch_size=8, replay=True,
                               until_memorized=True, decay_at=0.05, decay_epochs=1, warmup_steps=2)
    whole = train(TINY_MODEL, config, tiny_corpus, tiny_tokenizer_dir, tmp_path / "whole", tmp_path, progress=False)
    uniform = train(TINY_MODEL, tiny_train_config(**{**config.__dict__, "replay": False}), tiny_corpus,
                    tiny_tokenizer_dir, tmp_path / "uniform", tmp_path, progress=False)
    from laam.train.metrics import Metrics

    original_log = Metrics.log

    def interrupt_at_step_7(self, row):
        original_log(self, row)
        if row["step"] == 7 and "loss" in row:
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Metrics, "log", interrupt_at_step_7)
    cut = train(TINY_MODEL, config, tiny_corpus, tiny_tokenizer_dir, tmp_path / "cut", tmp_path, progress=False)
    assert cut.status == "interrupted" and cut.steps == 7
    saved = json.loads((checkpoints(tmp_path / "cut")[-1] / "state.json").read_text())
    assert saved["check"]["memorized"] == run_rows(tmp_path / "whole")[1][1][1]  # the check at step 6
    assert saved["decay_start"] == 3  # the first check passed 5%: the LR decays from there
    monkeypatch.setattr(Metrics, "log", original_log)
    resumed = train(TINY_MODEL, config, tiny_corpus, tiny_tokenizer_dir, tmp_path / "cut", tmp_path, resume=True,
                    progress=False)
    assert resumed.steps == whole.steps == 12
    (expected, expected_checks), (got, got_checks) = run_rows(tmp_path / "whole"), run_rows(tmp_path / "cut")
    assert [s for s, _ in got] == list(range(1, 13)) and got_checks == expected_checks
    assert np.allclose([v for _, v in got], [v for _, v in expected], rtol=1e-6, atol=0)
    uniform_losses = [v for _, v in run_rows(tmp_path / "uniform")[0]]
    assert uniform_losses[:3] == [v for _, v in expected[:3]]  # the same uniform start, up to the first check
    assert not np.allclose(uniform_losses[3:], [v for _, v in expected[3:]], rtol=1e-3)  # replay changed the data
    assert uniform.steps == 12


def test_max_time_slices_resume_exactly(tiny_corpus, tiny_tokenizer_dir, tmp_path):
    """--max-time counts each invocation's time, so a long run goes in slices (`--resume --max-time N` again and
    again): each slice ends with a checkpoint and a model folder, and the slices make the uninterrupted run's steps,
    checks and weights."""
    settings = dict(max_steps=7, eval_every=2, log_every=1, batch_size=8, replay=True, until_memorized=True)
    whole = train(TINY_MODEL, tiny_train_config(**settings), tiny_corpus, tiny_tokenizer_dir, tmp_path / "whole",
                  tmp_path, progress=False)
    run, steps = tmp_path / "sliced", []
    for i in range(3):  # a slice this short stops after its first step
        part = train(TINY_MODEL, tiny_train_config(**settings, max_time=1e-9), tiny_corpus, tiny_tokenizer_dir, run,
                     tmp_path, resume=i > 0, progress=False)
        assert part.status == "max-time" and (run / "model" / "model.safetensors").is_file()
        steps.append(part.steps)
    assert steps == [1, 2, 3]
    last = train(TINY_MODEL, tiny_train_config(**settings), tiny_corpus, tiny_tokenizer_dir, run, tmp_path,
                 resume=True, progress=False)
    assert last.steps == whole.steps == 7
    (expected, expected_checks), (got, got_checks) = run_rows(tmp_path / "whole"), run_rows(run)
    assert [s for s, _ in got] == list(range(1, 8))
    assert np.allclose([v for _, v in got], [v for _, v in expected], rtol=1e-6, atol=0)
    assert set(expected_checks) <= set(got_checks)  # plus each slice's own final check
    from safetensors.torch import load_file

    a, b = load_file(whole.model_dir / "model.safetensors"), load_file(last.model_dir / "model.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    # every slice records where it ran and where it stopped, so the run's history survives machine changes
    events = [r for r in read_metrics(run / "metrics.jsonl") if "event" in r]
    assert [(r["event"], r["step"]) for r in events] == [("start", 0), ("stop", 1), ("start", 1), ("stop", 2),
                                                          ("start", 2), ("stop", 3), ("start", 3), ("stop", 7)]
    assert [r["status"] for r in events if r["event"] == "stop"] == ["max-time"] * 3 + ["finished"]
    assert [r["resumed"] for r in events if r["event"] == "start"] == [False, True, True, True]
    assert all(r["cpu"] and r["cpus"] >= 1 and r["torch"] == torch.__version__ for r in events if r["event"] == "start")


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tiny_corpus, tiny_tokenizer_dir, tmp_path,
                                                                            monkeypatch):
    import laam.train.loss as loss_module

    calls = {"n": 0}
    real_head_loss = loss_module.head_loss

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        loss = real_head_loss(*args, **kwargs)
        return loss * float("nan") if calls["n"] == 3 else loss

    monkeypatch.setattr(loss_module, "head_loss", poisoned)
    config = tiny_train_config(max_steps=10, save_every=2, eval_every=0, batch_size=8)
    with pytest.raises(LaamError, match=r"training diverged: loss is nan at step 3.*step-00000002"):
        train(TINY_MODEL, config, tiny_corpus, tiny_tokenizer_dir, tmp_path / "run", tmp_path, progress=False)
    assert [p.name for p in checkpoints(tmp_path / "run")] == ["step-00000002"]
    assert not (tmp_path / "run" / "model").exists()


def test_checkpoints_never_unpickle(tmp_path, tiny_corpus, tiny_tokenizer_dir):
    """Optimizer/scheduler/RNG state loads with weights_only=True; weights are safetensors."""
    config = tiny_train_config(max_steps=2, eval_every=0, batch_size=4)
    result = train(TINY_MODEL, config, tiny_corpus, tiny_tokenizer_dir, tmp_path / "run", tmp_path, progress=False)
    last = checkpoints(result.run_dir)[-1]
    assert sorted(p.name for p in last.iterdir()) == ["manifest.json", "model.safetensors", "optimizer.pt", "rng.pt",
                                                       "sampler.pt", "scheduler.pt", "state.json"]
    for name in ("optimizer.pt", "rng.pt", "sampler.pt", "scheduler.pt"):
        torch.load(last / name, weights_only=True)
    assert not list((result.run_dir / "checkpoints").glob(".*"))


@pytest.mark.parametrize("steps", [160])
def test_verify_short_of_memorized_takes_the_checks_wrong_files_and_agrees_with_regenerating_them(
        steps, tiny_corpus, tiny_tokenizer_dir, token_cache, tmp_path):
    """A run stopped short of 100% regenerates only the files its final check found no wrong body token in; the
    others are reported at the check's first wrong token, which is where greedy regeneration goes wrong too."""
    from transformers import AutoModelForCausalLM

    from laam.data.tokenizer import load_tokenizer
    from laam.train.memorization import verify_records

    # 130 steps leave some files exact and some not (100 leave none exact, 160 all; one thread, seed 0)
    config = tiny_train_config(max_steps=130, until_memorized=False, eval_every=0, verify=True)
    result = train(TINY_MODEL, config, tiny_corpus, tiny_tokenizer_dir, tmp_path / "run", tmp_path, progress=False)
    regen = result.regeneration
    assert 0 < regen["not_regenerated"] == result.memorization["wrong_files"] < regen["files"] == 12
    assert regen["exact"] == regen["files"] - len(regen["wrong"])
    model = AutoModelForCausalLM.from_pretrained(result.model_dir).eval()
    full = verify_records(model, tiny_corpus.files, TINY_MODEL.policy, load_tokenizer(tiny_tokenizer_dir))
    assert full.not_regenerated == 0
    assert full.wrong == regen["wrong"]  # same files, same first wrong token
    laam_json = json.loads((result.model_dir / "laam.json").read_text())
    assert laam_json["training"]["regeneration"]["not_regenerated"] == regen["not_regenerated"]


def test_two_processes_match_one(tiny_corpus, tiny_tokenizer_dir, tarball, tmp_path):
    """The documented CPU launch, `torchrun --nproc_per_node 2 -m laam train ...` (gloo), makes the same updates
    as one process with the same global batch: losses within a relative 1e-5 (float32 sums in another order)."""
    import subprocess
    import sys


    root = Path(__file__).resolve().parents[2]
    torchrun = Path(sys.executable).with_name("torchrun")
    args = [str(tarball), "--cache", str(tmp_path / "cache"), "--preset", "tiny", "--tokenizer",
            str(tiny_tokenizer_dir), "--max-steps", "4", "--no-until-memorized", "--eval-every", "0",
            "--log-every", "1", "--threads", "1", "--batch-size", "8", "--no-verify", "-q"]
    env = {**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([str(torchrun), "--nproc_per_node", "2", "-m", "laam", "train", *args,
                           "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    config = tiny_train_config(max_steps=4, until_memorized=False, eval_every=0, log_every=1, batch_size=8)
    train(TINY_MODEL, config, tiny_corpus, tiny_tokenizer_dir, tmp_path / "one", tmp_path / "cache", progress=False)

    def rows(run):
        return [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]

    one, two = rows("one"), rows("two")
    losses = [[r["loss"] for r in rs if "loss" in r] for rs in (one, two)]
    assert len(losses[1]) == 4
    assert np.allclose(losses[1], losses[0], rtol=1e-5, atol=0)
    assert [r["tokens"] for r in two if "loss" in r] == [r["tokens"] for r in one if "loss" in r]
    assert two[-1]["memorized"] == pytest.approx(one[-1]["memorized"], abs=2 / one[-1]["body_total"])
    assert "2 process(es)" in done.stdout + done.stderr


def test_cli_train_writes_a_run_folder_and_refuses_to_clobber_it(tiny_tokenizer_dir, tarball, tmp_path):
    from typer.testing import CliRunner

    from laam.cli import app

    out = tmp_path / "run"
    args = ["train", str(tarball), "--cache", str(tmp_path / "cache"), "--preset", "tiny", "--tokenizer",
            str(tiny_tokenizer_dir), "--max-steps", "3", "--eval-every", "0", "--threads", "1", "--no-verify",
            "--num-layers", "1", "--out", str(out), "-q"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (out / "model" / "model.safetensors").is_file() and (out / "metrics.jsonl").is_file()
    from laam.model.info import read_model_info

    training = read_model_info(out / "model").training
    assert training["steps"] == 3 and training["model_config"]["num_layers"] == 1
    assert training["preset"] == "tiny"
    again = CliRunner().invoke(app, args)
    assert again.exit_code != 0 and "already exists" in str(again.exception)
    longer = [*args[:-3], "--max-steps", "5", "--out", str(out), "--resume", "-q"]
    refused = CliRunner().invoke(app, longer)  # a longer run decays the learning rate over 5 steps, not 3
    assert refused.exit_code != 0 and "decay_steps 3 -> 5" in str(refused.exception)
    resumed = CliRunner().invoke(app, [*longer, "--allow-change", "decay_steps"])
    assert resumed.exit_code == 0, resumed.output
    training = read_model_info(out / "model").training
    assert training["steps"] == 5 and training["history"] == [{"step": 3, "changed": {"decay_steps": [3, 5]}}]
    # an allowed change of the peak LR takes effect (the saved optimizer and scheduler state carry the old one)
    slower = [*args[:-3], "--max-steps", "7", "--decay-steps", "5", "--log-every", "1", "--lr", "1e-4",
              "--allow-change", "lr", "--out", str(out), "--resume", "-q"]
    resumed = CliRunner().invoke(app, slower)
    assert resumed.exit_code == 0, resumed.output
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    warmup = PRESETS["tiny"]["train"]["warmup_steps"]  # steps 6 and 7 are still warming up to the new peak
    assert [r["lr"] for r in rows if "loss" in r and r["step"] > 5] == pytest.approx([1e-4 * 7 / warmup,
                                                                                       1e-4 * 8 / warmup])


def test_a_resumed_checkpoint_takes_this_run_s_optimizer_settings_and_keeps_its_state(tmp_path):
    from laam.train.checkpoint import load_checkpoint, save_checkpoint

    def make(lr, betas, weight_decay):
        torch.manual_seed(0)
        model = torch.nn.Linear(3, 2)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=betas, weight_decay=weight_decay)
        return model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 ** step)

    model, optimizer, scheduler = make(1e-2, (0.9, 0.95), 0.0)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    save_checkpoint(tmp_path, model, optimizer, scheduler, {"step": 1}, keep=1)
    model2, optimizer2, scheduler2 = make(4e-2, (0.8, 0.99), 0.1)
    load_checkpoint(tmp_path / "checkpoints" / "step-00000001", model2, optimizer2, scheduler2)
    group = optimizer2.param_groups[0]
    assert group["lr"] == 4e-2 * 0.5 and scheduler2.get_last_lr() == [4e-2 * 0.5] and scheduler2.base_lrs == [4e-2]
    assert group["betas"] == (0.8, 0.99) and group["weight_decay"] == 0.1 and scheduler2.last_epoch == 1
    saved, loaded = optimizer.state_dict()["state"][0], optimizer2.state_dict()["state"][0]
    assert torch.equal(saved["exp_avg"], loaded["exp_avg"]) and torch.equal(model.weight, model2.weight)
    unchanged = make(1e-2, (0.9, 0.95), 0.0)  # the same settings resume exactly where the saved run stood
    load_checkpoint(tmp_path / "checkpoints" / "step-00000001", *unchanged)
    assert unchanged[1].param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]


def test_unknown_or_missing_tracker_is_a_clear_error(tiny_corpus, tiny_tokenizer_dir, tmp_path):
    with pytest.raises(LaamError, match="unknown tracker 'nope'"):
        train(TINY_MODEL, tiny_train_config(report_to=["nope"]), tiny_corpus, tiny_tokenizer_dir, tmp_path / "r",
              tmp_path, progress=False)


def test_tensorboard_tracker_gets_the_same_metrics(tiny_corpus, tiny_tokenizer_dir, tmp_path):
    """--report-to tensorboard writes event files in the run folder with metrics.jsonl's loss and memorization."""
    pytest.importorskip("tensorboard", reason="pip install -e '.[trackers]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = tmp_path / "run"
    train(TINY_MODEL, tiny_train_config(report_to=["tensorboard"], max_steps=20, log_every=5, eval_every=10,
                                        until_memorized=False), tiny_corpus, tiny_tokenizer_dir, run, tmp_path,
          progress=False)
    assert list((run / "laam").glob("events.out.tfevents.*")), sorted(p.as_posix() for p in run.rglob("*"))
    board = EventAccumulator(str(run / "laam"))  # accelerate's project folder; hparams go to a subfolder
    board.Reload()
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    losses = {r["step"]: r["loss"] for r in rows if "loss" in r}
    logged = {e.step: e.value for e in board.Scalars("loss")}
    assert logged.keys() == losses.keys() and all(logged[s] == pytest.approx(losses[s], rel=1e-6) for s in losses)
    assert {e.step for e in board.Scalars("memorized")} == {r["step"] for r in rows if "memorized" in r}


def test_replay_and_adaptive_decay_are_part_of_what_resume_checks():
    """They decide the weights, so turning them on or off at --resume is refused unless allowed; a checkpoint written
    before they existed (no such keys) resumes unchanged with their defaults."""
    from laam.train.resume import check_resume, run_identity

    def identity(**settings):
        return run_identity(TINY_MODEL, tiny_train_config(**settings), "corpus", "tokenizer", 100, None)

    before = identity()
    assert "replay" not in before and "decay_at" not in before
    assert check_resume(before, identity(), (), "here") == {}
    with pytest.raises(LaamError, match=r"replay False -> True|replay None -> True"):
        check_resume(before, identity(replay=True), (), "here")
    assert check_resume(before, identity(replay=True), ("replay",), "here") == {"replay": [None, True]}
    with pytest.raises(LaamError, match="decay_at"):
        check_resume(identity(decay_at=0.9), identity(), (), "here")  # set back to the default: still a change


@pytest.mark.slow  # tens of seconds; the resume tests above keep exact resume in the fast tier
def test_linux_cpu_preset_trains_in_resumable_slices(tarball, tmp_path):
    """`laam train --preset linux-cpu --max-time N`, then `--resume --max-time N` again: each slice ends with a
    checkpoint and a model folder and the next goes on from it, making the uninterrupted run's steps (here on a
    4 KB slice, slices of one step)."""
    from typer.testing import CliRunner

    from laam.cli import app

    common = ["train", str(tarball), "--cache", str(tmp_path / "cache"), "--preset", "linux-cpu", "--include",
              "linux/lib/", "--exclude", "linux/lib/malloc.c", "--threads", "1", "--no-verify", "--eval-every", "2",
              "--log-every", "1", "-q"]
    for i in range(3):
        result = CliRunner().invoke(app, [*common, "--max-time", "0.000001", "--out", str(tmp_path / "sliced")]
                                    + (["--resume"] if i else []))
        assert result.exit_code == 0, result.output
    whole = CliRunner().invoke(app, [*common, "--max-steps", "3", "--out", str(tmp_path / "whole")])
    assert whole.exit_code == 0, whole.output
    sliced, straight = run_rows(tmp_path / "sliced")[0], run_rows(tmp_path / "whole")[0]
    assert [s for s, _ in sliced] == [1, 2, 3]
    assert np.allclose([v for _, v in sliced], [v for _, v in straight], rtol=1e-6, atol=0)
    from laam.model.info import read_model_info

    training = read_model_info(tmp_path / "sliced" / "model").training
    assert training["status"] == "max-time" and training["steps"] == 3
    assert training["model_config"]["context"] == 384 and training["train_config"]["until_memorized"] is True
