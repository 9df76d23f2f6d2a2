"""How a file longer than the model's context is seen, in training and in generation alike.

Generation reads at most `context` tokens. When the next prediction would need more, the
oldest `stride` tokens of the window are dropped, the rest is re-read (prefill) and generation
continues with the KV cache until the window is full again. So the token at position p is
predicted from tokens [context_start(p), p): from position 0 while p <= context.

Training uses windows of context + 1 tokens starting at k*stride, and puts the loss only on the
targets that window predicts with exactly that context (its last `stride` targets; all of them
in the first window). Every token is a target exactly once per epoch, with the same context that greedy
regeneration will give it; hence teacher-forced accuracy under these windows equals what greedy
regeneration reproduces. (The original LaaM trained chunks at other offsets than it generated.)
"""

from __future__ import annotations


def default_stride(context: int) -> int:
    return max(1, context // 2)


def context_start(position: int, context: int, stride: int) -> int:
    """First token the model sees when predicting the token at `position` (it sees at most `context`)."""
    if position <= context:
        return 0
    return ((position - context - 1) // stride + 1) * stride


def windows(length: int, context: int, stride: int) -> list[tuple[int, int, int]]:
    """(start, end, first_target) for each training window of a `length`-token sequence.

    The model reads tokens [start, end - 1) and is scored on tokens [first_target, end): every
    position 1 .. length-1 is scored in exactly one window, from context_start(position).
    """
    if not 0 < stride <= context:
        raise ValueError(f"stride must be in 1..context, got {stride} for context {context}")
    out = [(0, min(length, context + 1), 1)]
    start = stride
    while start + context + 1 - stride < length:
        out.append((start, min(length, start + context + 1), start + context + 1 - stride))
        start += stride
    return out
