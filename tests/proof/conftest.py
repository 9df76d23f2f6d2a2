"""Models the proof tests share: the tiny memorized model, loaded, and an untrained one of the same shape."""

from __future__ import annotations

import shutil

import pytest
import torch

from laam.model.folder import load_model


@pytest.fixture(scope="session")
def tiny(tiny_model_dir):
    torch.set_num_threads(1)
    loaded = load_model(tiny_model_dir)
    return loaded.model, loaded.tokenizer, loaded.policy


@pytest.fixture(scope="session")
def untrained_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model's shape, tokenizer and laam.json, with fresh random weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("untrained")
    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny_model_dir))
    model.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "laam.json", "generation_config.json"):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, folder / name)
    return folder
