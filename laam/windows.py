"""The context rule: which tokens the model sees when it predicts each position of a file.

Generation reads at most `context` tokens. When the next prediction would need more, the oldest
`stride` tokens of the window are dropped, the rest is re-read (prefill) and generation continues
with the KV cache until the window is full again. So the token at position p is predicted from
tokens [context_start(p), p): from position 0 while p <= context.

Training uses windows of context + 1 tokens starting at k*stride, and puts the loss only on the
targets that window predicts with exactly that context (its last `stride` targets; all of them in
the first window). Every token is a target exactly once per epoch, with the same context that greedy
regeneration will give it; hence teacher-forced accuracy under these windows equals what greedy
regeneration reproduces. (The original LaaM trained chunks at other offsets than it generated.)

`WindowPolicy` is the only implementation of this rule: training windows, the memorization check,
the decoding engine, draft verification and the compressor all ask it. (The `custom_generate` file
shipped in model folders must stay self-contained, so it restates the rule; a test holds it to this one.)
"""

from __future__ import annotations

from dataclasses import dataclass


def default_stride(context: int) -> int:
    return max(1, context // 2)


@dataclass(frozen=True)
class WindowPolicy:
    context: int  # the most tokens the model reads
    stride: int  # tokens dropped when the window slides

    def __post_init__(self):
        if not 0 < self.stride <= self.context:
            raise ValueError(f"stride must be in 1..context, got {self.stride} for context {self.context}")

    def context_start(self, position: int) -> int:
        """First token the model sees when predicting the token at `position` (it sees at most `context`)."""
        if position <= self.context:
            return 0
        return ((position - self.context - 1) // self.stride + 1) * self.stride

    def window_end(self, position: int) -> int:
        """The last position predicted from the same window as `position` (the window slides after it)."""
        return self.context_start(position) + self.context

    def windows(self, length: int) -> list[tuple[int, int, int]]:
        """(start, end, first_target) for each training window of a `length`-token sequence.

        The model reads tokens [start, end - 1) and is scored on tokens [first_target, end): every
        position 1 .. length-1 is scored in exactly one window, from context_start(position).
        """
        context, stride = self.context, self.stride
        out = [(0, min(length, context + 1), 1)]
        start = stride
        while start + context + 1 - stride < length:
            out.append((start, min(length, start + context + 1), start + context + 1 - stride))
            start += stride
        return out
