"""Growing a trained model at resume: the grown model starts as the same function, the old weights go on as
they would have, and a shape that cannot grow is a clear error that leaves the checkpoints alone."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from laam.errors import LaamError
from laam.model.config import ModelConfig, build_model
from laam.model.presets import PRESETS
from laam.train.checkpoint import checkpoints, load_checkpoint, save_checkpoint
from laam.train.config import TrainConfig
from laam.train.grow import GrownLR, Growth, growth, layer_sources
from laam.train.loop import train
from laam.train.optimizer import build_optimizer, parameter_groups

SPECIAL = {"<|start_file|>": 0, "<|end_file|>": 3, "<|pad|>": 4}
SMALL = ModelConfig(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=2, num_kv_heads=2, context=16,
                    stride=8, vocab_size=64)


def test_new_layers_are_spread_evenly_each_after_the_last_old_layer_of_its_group():
    assert layer_sources(4, 8) == [(0, False), (0, True), (1, False), (1, True), (2, False), (2, True),
                                   (3, False), (3, True)]
    assert layer_sources(4, 6) == [(0, False), (1, False), (1, True), (2, False), (3, False), (3, True)]
    assert layer_sources(2, 5) == [(0, False), (0, True), (0, True), (1, False), (1, True)]
    assert layer_sources(3, 3) == [(0, False), (1, False), (2, False)]


def test_only_more_layers_or_a_wider_mlp_can_start_from_a_checkpoint():
    assert growth(SMALL, replace(SMALL, num_layers=3, intermediate_size=96, context=32)) == {
        "intermediate_size": (64, 96), "num_layers": (2, 3)}
    assert growth(SMALL, replace(SMALL, precision="bf16")) == {}
    with pytest.raises(LaamError, match="hidden_size 32 -> 64"):
        growth(SMALL, replace(SMALL, hidden_size=64))
    with pytest.raises(LaamError, match="num_layers 2 -> 1"):
        growth(SMALL, replace(SMALL, num_layers=1))


def test_the_grown_parts_are_the_new_layers_and_the_new_mlp_rows_and_follow_a_second_growth():
    first = Growth(SMALL, replace(SMALL, num_layers=3, intermediate_size=96), SPECIAL, seed=0)
    names = build_model(SMALL, SPECIAL).state_dict()
    parts = first.parts(first.sources(names))
    assert ["model.layers.2.self_attn.o_proj.weight", 0, 0] in parts  # layer 2 is the copy of layer 1
    assert ["model.layers.0.mlp.gate_proj.weight", 0, 64] in parts and ["model.layers.1.mlp.down_proj.weight", 1, 64] \
        in parts
    assert not [p for p in parts if p[0].startswith("model.layers.2.") and p[2]]  # a new layer is whole
    assert not [p for p in parts if not p[0].startswith("model.layers.")]
    grown = replace(SMALL, num_layers=3, intermediate_size=96)
    second = Growth(grown, replace(grown, num_layers=6), SPECIAL, seed=0)
    again = second.parts(second.sources(build_model(grown, SPECIAL).state_dict()), parts)
    # old layer 2 (the first growth's copy) is now layer 4 and stays grown; layer 1 moved to 2 with its new rows
    assert ["model.layers.4.self_attn.o_proj.weight", 0, 0] in again
    assert ["model.layers.2.mlp.gate_proj.weight", 0, 64] in again
    assert ["model.layers.5.mlp.gate_proj.weight", 0, 0] in again  # the copy of old layer 2


def test_grown_parts_move_at_the_scaled_learning_rate_and_the_rest_as_before():
    def stepped(scale):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 6)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
        before = model.weight.detach().clone()
        faster = GrownLR(model, [["weight", 0, 4]], scale)
        model(torch.ones(2, 4)).square().sum().backward()
        faster.before()
        optimizer.step()
        faster.after()
        return model.weight.detach() - before

    plain, fast = stepped(1.0), stepped(5.0)
    assert torch.equal(fast[:4], plain[:4]) and plain[4:].abs().min() > 0
    assert torch.allclose(fast[4:], 5 * plain[4:], rtol=1e-5)


def trained_checkpoint(tmp_path):
    """A SMALL model after two AdamW steps (so every weight and moment is non-trivial), saved as a checkpoint."""
    model = build_model(SMALL, SPECIAL, seed=1)
    config = TrainConfig(lr=1e-2)
    optimizer = build_optimizer(model, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    ids = torch.randint(0, SMALL.vocab_size, (4, SMALL.context), generator=torch.Generator().manual_seed(2))
    for _ in range(2):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    save_checkpoint(tmp_path, model, optimizer, scheduler, {"step": 2}, keep=1)
    return model, optimizer, config, ids


@pytest.mark.parametrize("shape", [{"num_layers": 4}, {"intermediate_size": 96}, {"num_layers": 3,
                                                                                  "intermediate_size": 128}])
def test_a_grown_model_computes_what_the_checkpoint_did_and_its_old_weights_train_as_before(tmp_path, shape):
    old, old_optimizer, config, ids = trained_checkpoint(tmp_path)
    grown_config = replace(SMALL, **shape)
    grown = build_model(grown_config, SPECIAL, seed=7)
    optimizer = build_optimizer(grown, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    growth_ = Growth(SMALL, grown_config, SPECIAL, seed=0)
    load_checkpoint(checkpoints(tmp_path)[-1], grown, optimizer, scheduler, grow=growth_)
    with torch.no_grad():
        assert torch.allclose(grown(input_ids=ids).logits, old(input_ids=ids).logits, atol=1e-5)
    # the new parts are there and not all zero: the MLP's new rows are drawn, a new layer copies its source
    state = grown.state_dict()
    if "intermediate_size" in shape:
        assert state["model.layers.0.mlp.gate_proj.weight"][SMALL.intermediate_size:].std() > 0.01
    for k, (i, copy) in enumerate(layer_sources(SMALL.num_layers, grown_config.num_layers)):
        if copy:
            assert torch.equal(state[f"model.layers.{k}.self_attn.q_proj.weight"],
                               old.state_dict()[f"model.layers.{i}.self_attn.q_proj.weight"])
            assert not state[f"model.layers.{k}.self_attn.o_proj.weight"].any()
    # one more step on the same batch: every old weight moves as it would have in the old model (a zero output
    # projection passes no gradient back), and a new layer's moments started from nothing
    for model, opt in ((old, old_optimizer), (grown, optimizer)):
        model(input_ids=ids, labels=ids).loss.backward()
        opt.step()
    sources = growth_.sources(old.state_dict())
    after_old, after_grown = old.state_dict(), grown.state_dict()
    for name, (source, copy) in sources.items():
        if not copy:
            rows = tuple(slice(0, n) for n in after_old[source].shape)
            assert torch.allclose(after_grown[name][rows], after_old[source], atol=1e-6), name
    names = [n for group in parameter_groups(grown) for n in group]
    fresh = [names[i] for i, s in optimizer.state_dict()["state"].items() if int(s["step"]) == 1]
    assert fresh == [n for n in names if sources[n][1]]


def test_resume_grows_the_run_s_model_and_records_the_change(tiny_corpus, tiny_tokenizer_dir, tmp_path):
    tiny = ModelConfig(**PRESETS["tiny"]["model"])
    config = TrainConfig(**{**PRESETS["tiny"]["train"], "threads": 1, "verify": False, "max_steps": 4,
                            "eval_every": 0, "until_memorized": False, "decay_steps": 4})
    train(tiny, config, tiny_corpus, tiny_tokenizer_dir, tmp_path / "run", tmp_path, progress=False)
    wider = replace(tiny, num_layers=tiny.num_layers + 1)
    with pytest.raises(LaamError, match="num_layers"):  # a change of shape is asked for, as any other
        train(wider, replace(config, max_steps=6), tiny_corpus, tiny_tokenizer_dir, tmp_path / "run", tmp_path,
              resume=True, progress=False)
    with pytest.raises(LaamError, match="only grow"):  # refused before loading: the checkpoint is not set aside
        train(replace(tiny, hidden_size=tiny.hidden_size * 2), replace(config, max_steps=6), tiny_corpus,
              tiny_tokenizer_dir, tmp_path / "run", tmp_path, resume=True, progress=False,
              allow_changes=("model",))
    assert [p.name for p in checkpoints(tmp_path / "run")] == ["step-00000004"]
    result = train(wider, replace(config, max_steps=6, grown_lr_scale=20.0), tiny_corpus, tiny_tokenizer_dir,
                   tmp_path / "run", tmp_path, resume=True, progress=False,
                   allow_changes=("model.num_layers", "grown_lr_scale"))
    assert result.steps == 6
    card = json.loads((result.model_dir / "config.json").read_text())
    assert card["num_hidden_layers"] == tiny.num_layers + 1
    state = json.loads((checkpoints(tmp_path / "run")[-1] / "state.json").read_text())
    assert state["history"] == [{"step": 4, "changed": {"model.num_layers": [tiny.num_layers, tiny.num_layers + 1],
                                                        "grown_lr_scale": [None, 20.0]}}]
    new_layer = tiny.num_layers  # one layer added: after the last old one
    assert state["grown"] and {name.split(".")[2] for name, _, _ in state["grown"]} == {str(new_layer)}
    from safetensors.torch import load_file

    weights = load_file(checkpoints(tmp_path / "run")[-1] / "model.safetensors")
    # its zero output projection moved: Adam's first step moves a coordinate by the LR, so two steps at the plain
    # LR move it by little more than twice that
    lr = max(json.loads(line).get("lr", 0) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())
    assert weights[f"model.layers.{new_layer}.mlp.down_proj.weight"].abs().max() > 10 * lr
