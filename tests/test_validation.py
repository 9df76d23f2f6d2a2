"""laam.validation: the rules of every config dataclass name real fields, and the checks refuse what the CLI and
recipe files can hand them (wrong types, NaN, infinities, out-of-range numbers)."""

from __future__ import annotations

import math
from dataclasses import fields

import pytest

from laam.data.corpus import CorpusConfig
from laam.engine.sampling import Sampling
from laam.model.config import ModelConfig
from laam.model.info import ModelInfo
from laam.proof.audit import AuditConfig
from laam.proof.compress.run import CompressConfig
from laam.proof.foreign import ForeignAuditConfig
from laam.train.config import TrainConfig
from laam.validation import FRACTION, POSITIVE, OneOf, Range, SettingError

CONFIGS = [TrainConfig, ModelConfig, Sampling, AuditConfig, ForeignAuditConfig, CompressConfig, CorpusConfig, ModelInfo]


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.__name__)
def test_every_rule_names_a_field(cls):
    """A rule under a misspelt name would never be checked."""
    assert set(getattr(cls, "RULES", {})) <= {f.name for f in fields(cls)}


def test_ranges_read_as_written():
    assert str(POSITIVE) == "> 0" and str(FRACTION) == "in [0, 1]" and str(Range(0, 1, high_open=True)) == "in [0, 1)"
    assert POSITIVE.holds(1e-9) and not POSITIVE.holds(0) and not FRACTION.holds(1.5)
    assert OneOf(("a", "b")).holds("a") and not OneOf(("a", "b")).holds("c")


@pytest.mark.parametrize("settings, key", [
    ({"lr": math.nan}, "lr"), ({"lr": -math.inf}, "lr"), ({"epochs": 0}, "epochs"), ({"batch_size": 2.5}, "batch_size"),
    ({"batch_size": True}, "batch_size"), ({"until_memorized": 1}, "until_memorized"), ({"report_to": "wandb"},
                                                                                         "report_to"),
    ({"schedule": "step"}, "schedule"), ({"replay_rest": 2.0}, "replay_rest"), ({"compile": "yes"}, "compile"),
])
def test_train_config_refuses(settings, key):
    with pytest.raises(SettingError) as raised:
        TrainConfig(**settings)
    assert raised.value.key == key and key in str(raised.value)


def test_valid_values_pass():
    assert TrainConfig(lr=1, epochs=0.5, compile=None, report_to=["tensorboard"]).lr == 1  # an int where a float is
    assert ModelConfig(rope_theta=500000).rope_theta == 500000
    assert Sampling(greedy=False, temperature=0).greedy  # temperature 0 is argmax
    assert not Sampling(greedy=False, temperature=0.5).greedy
