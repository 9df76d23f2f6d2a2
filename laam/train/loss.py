"""The training loss: cross entropy on the scored positions only, with a fused LM head.

The loss is computed from hidden states (`model.model(...)`) with a fused LM head + cross entropy
(torch.nn.functional.linear_cross_entropy where available): with laam.windows about half of each
window is context only, so the vocabulary projection is skipped there, and the full logits tensor
is never materialized.
"""

from __future__ import annotations

import torch
from torch import nn

from laam.train.batches import IGNORE


def cpu_loss_chunk(vocab_size: int) -> int:
    """Rows per chunk of the fused head + loss on CPU: about 4M logits, at most 1,024 rows (128 at vocab 32768).

    torch's automatic choice for float32 on CPU ("aspect_ratio:2") cuts 4-row chunks at vocab 32768 and hidden
    64, and the head + loss then ran 3.5x slower than with 128 rows (2.9 s against 0.8 s for 4,096 rows on one
    thread here: benchmarks/head_loss.py). At vocab 2048 and 4096, 128 to 1,024 rows ran alike.
    """
    return min(1024, max(16, (1 << 22) // vocab_size))


def head_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """Sum of cross entropy of `hidden @ weight.T` against `targets`, without materializing all logits when the
    fused kernel is available (torch >= 2.13) and worth it (more rows than hidden units)."""
    fused = getattr(torch.nn.functional, "linear_cross_entropy", None)
    if fused is not None and hidden.shape[0] >= hidden.shape[1] and weight.shape[0] > hidden.shape[1]:
        if not chunk and hidden.device.type == "cpu":
            chunk = cpu_loss_chunk(weight.shape[0])
        options = torch.nn.LinearCrossEntropyOptions(batch_chunk_size=chunk or None)
        return fused(hidden, weight, targets, reduction="sum", options=options)
    logits = torch.nn.functional.linear(hidden, weight)
    return torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum")


class WindowLoss(nn.Module):
    """The LlamaForCausalLM plus its loss on scored positions, as one module so DDP sees a single forward."""

    def __init__(self, model, chunk: int = 0):
        super().__init__()
        self.model, self.chunk = model, chunk

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hidden = self.model.model(input_ids=input_ids).last_hidden_state
        scored = labels != IGNORE
        return head_loss(hidden[scored], self.model.lm_head.weight, labels[scored], self.chunk)
