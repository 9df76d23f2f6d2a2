"""The optimizer: AdamW over two parameter groups, matrices with weight decay and norms without.

A saved optimizer state names parameters by their position in these groups, so the order is one rule
here that both the training loop and a model that grows at resume (train.grow) follow.
"""

from __future__ import annotations

import torch


def parameter_groups(model) -> tuple[list[str], list[str]]:
    """Names of the parameters that are decayed (matrices) and that are not (norm gains), in AdamW's order."""
    named = list(model.named_parameters())
    return [n for n, p in named if p.dim() >= 2], [n for n, p in named if p.dim() < 2]


def build_optimizer(model, config) -> torch.optim.AdamW:
    """AdamW with the run's LR, betas and weight decay (config: train.config.TrainConfig)."""
    params = dict(model.named_parameters())
    decay, other = parameter_groups(model)
    return torch.optim.AdamW([{"params": [params[n] for n in decay], "weight_decay": config.weight_decay},
                              {"params": [params[n] for n in other], "weight_decay": 0.0}],
                             lr=config.lr, betas=(config.beta1, config.beta2))
