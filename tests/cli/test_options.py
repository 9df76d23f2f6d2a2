"""`laam train`'s and `laam run`'s setting flags are made from the config dataclasses (laam/cli/options.py): every
user-settable field has its flag, named as the field, with the field's help; a flag given reaches the field, and a
flag left out leaves the recipe's value. Parsing only: the pipeline function the command calls is replaced by one
that records its arguments."""

from __future__ import annotations

from dataclasses import dataclass, fields

import pytest
import typer
from typer.testing import CliRunner

from laam.cli import app
from laam.cli.options import Group, flag, option, with_settings
from laam.data.corpus import CorpusConfig
from laam.model.config import ModelConfig
from laam.train.config import TrainConfig
from laam.validation import OneOf, help_of, setting

USER_FIELDS = [(config, f) for config in (ModelConfig, TrainConfig) for f in fields(config)
               if f.metadata.get("flag", True)]


def _command(name: str):
    return typer.main.get_command(app).commands[name]


def test_every_config_field_declares_whether_it_is_a_flag_and_its_help():
    """A field added without `setting(..., help)` fails here (and `laam train` refuses to start without it)."""
    for config in (ModelConfig, TrainConfig, CorpusConfig):
        for f in fields(config):
            assert "flag" in f.metadata, f"{config.__name__}.{f.name} is not declared with laam.validation.setting"
            assert help_of(f).strip(), f"{config.__name__}.{f.name} has no help text"
    assert [f.name for f in fields(TrainConfig) if not f.metadata["flag"]] == ["final_check"]


def test_train_help_documents_every_user_settable_field():
    result = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0, result.output
    params = {p.name: p for p in _command("train").params}
    for _, f in USER_FIELDS:
        assert flag(f.name) in result.output, f.name
        assert params[f.name].help == help_of(f), f.name
        assert params[f.name].opts == [flag(f.name)], f.name  # one name: the field's
        first_words = " ".join(help_of(f).split()[:3])
        assert first_words in " ".join(result.output.split()), f.name
    assert "--final-check" not in result.output


def test_a_field_without_help_cannot_become_a_flag():
    @dataclass
    class Bare:
        width: int = 3

    with pytest.raises(TypeError, match="width has no help text"):
        option(fields(Bare)[0], int, "panel")


def test_two_groups_may_not_share_a_flag():
    @dataclass
    class Other:
        lr: float = setting(1.0, "Another lr.")

    with pytest.raises(TypeError, match="two flags share a name"):
        with_settings(a=Group(TrainConfig, "A"), b=Group(Other, "B"))(lambda *, a, b: None)


def _value_for(config, f) -> tuple[list[str], object]:
    """Flag arguments that set field `f` to a value other than its default, and that value."""
    default = getattr(config(), f.name)
    rule = config.RULES.get(f.name)
    if isinstance(rule, OneOf):
        value = next(choice for choice in rule.choices if choice != default)
        return [flag(f.name), value], value
    if f.name == "report_to":
        return [flag(f.name), "tensorboard", flag(f.name), "wandb"], ["tensorboard", "wandb"]
    if isinstance(default, bool) or default is None:  # compile: None means "measured"
        return ([flag(f.name)], True) if not default else (["--no-" + flag(f.name)[2:]], False)
    if isinstance(default, int):
        return [flag(f.name), str(default + 3)], default + 3
    value = default / 2 if default else 0.5
    return [flag(f.name), repr(value)], value


@pytest.fixture
def recorded(monkeypatch):
    """What `laam train` hands the pipeline, instead of training."""
    calls = []

    def train_recipe(preset, config_file, source, mirror, cache, corpus, tokenizer, model, train, *rest, **more):
        calls.append({"preset": preset, "corpus": corpus, "model": model, "train": train})
        return "model-folder"

    monkeypatch.setattr("laam.pipeline.train_recipe", train_recipe)
    return calls


def _train(*args: str):
    return CliRunner().invoke(app, ["train", "--no-allocator", *args])


@pytest.mark.parametrize("config, f", USER_FIELDS, ids=[f.name for _, f in USER_FIELDS])
def test_a_flag_sets_its_field(recorded, config, f):
    args, value = _value_for(config, f)
    result = _train(*args)
    assert result.exit_code == 0, result.output
    group = "model" if config is ModelConfig else "train"
    assert recorded[-1][group] == {f.name: value}


def test_flags_reach_the_configs_and_the_rest_stays_the_recipes(recorded):
    from laam.model.presets import recipe
    from laam.pipeline import build_configs, corpus_config

    result = _train("--preset", "demo", "--num-layers", "3", "--lr", "0.01", "--no-verify", "--include", "kernel/",
                    "--include", "mm/", "--filter", "original")
    assert result.exit_code == 0, result.output
    call = recorded[-1]
    plan = recipe("demo")
    model_config, (train_config,) = build_configs(plan, call["model"], call["train"])
    assert (model_config.num_layers, train_config.lr, train_config.verify) == (3, 0.01, False)
    # not given: the preset's values, which differ from the dataclass defaults
    assert (train_config.batch_size, model_config.vocab_size) == (plan["train"]["batch_size"], 2048)
    assert TrainConfig().batch_size != train_config.batch_size
    selection = corpus_config(plan, "1.0", "mirror", None, call["corpus"])
    assert (selection.include, selection.filter) == (("kernel/", "mm/"), "original")


def test_run_takes_threads_from_train_config(monkeypatch, tmp_path):
    from laam.pipeline import PipelineResult

    calls = []
    monkeypatch.setattr("laam.pipeline.run", lambda *args, **kwargs: calls.append(args) or PipelineResult(
        tmp_path, None, None, None, 0.0))
    threads = next(p for p in _command("run").params if p.name == "threads")
    assert threads.help == help_of(next(f for f in fields(TrainConfig) if f.name == "threads"))
    result = CliRunner().invoke(app, ["run", "--no-allocator", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert calls[-1][8] == 1  # pipeline.run's threads
    CliRunner().invoke(app, ["run", "--no-allocator"])
    assert calls[-1][8] is None
