"""Greedy decoding checked against a draft, a window per forward pass (greedy speculative decoding).

When the expected output is known (the original file, in an audit), one forward pass over a row's
window plus the draft's next tokens gives the model's argmax at every position up to the end of the
window (where the WindowPolicy would slide); the draft is accepted while it equals the argmax, and at
the first difference the model's own token is taken and the row leaves draft mode. The output is
therefore greedy generation (up to float rounding between a window read and cached decoding, which
matters only at near-ties of the two best logits); the draft only saves one forward pass per token
when the model has memorized the text. A row that strayed may come back to its draft (a changed
line): `resync` finds its last tokens in the draft, as prompt-lookup decoding does.
"""

from __future__ import annotations

from collections.abc import Sequence

from laam.engine.kv import left_padded
from laam.engine.request import GenerationStats, Request, Row
from laam.windows import WindowPolicy

RESYNC_NGRAM = 8  # tokens of own output that must match the draft to resume verifying it
LOGIT_SLICE = 64  # positions whose logits are computed at once (never a [rows, window, vocab] tensor)


def verify_drafts(model, policy: WindowPolicy, rows: list[Row], requests: Sequence[Request],
                  stats: GenerationStats) -> dict[int, list[int]]:
    """The greedy tokens of rows that still follow their draft, keyed by id(row); rows leave draft mode at a miss."""
    plans = []
    for row in rows:
        request = requests[row.index]
        p = len(row.tokens)
        n = min(policy.window_end(p) - p + 1, request.max_new_tokens - row.generated, len(request.draft) - row.draft_at)
        plans.append((row, policy.context_start(p), request.draft[row.draft_at:row.draft_at + n]))
    out = {}
    # A few rows at a time: each reads up to `context` tokens, and attention scores grow with its square.
    per_forward = max(1, 4096 // policy.context)
    head = model.get_output_embeddings()
    for i in range(0, len(plans), per_forward):
        chunk = plans[i:i + per_forward]
        ids, mask, positions = left_padded([row.tokens[start:] + guess[:-1] for row, start, guess in chunk])
        hidden = model.base_model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
                                  position_ids=positions.to(model.device), use_cache=False).last_hidden_state
        stats.forward_tokens += int(mask.sum())
        for j, (row, _, guess) in enumerate(chunk):
            states, predicted = hidden[j, ids.shape[1] - len(guess):], []
            for c in range(0, len(guess), LOGIT_SLICE):  # stop at the first miss
                best = head(states[c:c + LOGIT_SLICE]).max(-1).indices.tolist()
                predicted.extend(best)
                if best != guess[c:c + LOGIT_SLICE]:
                    break
            out[id(row)] = _accept(row, guess, predicted, len(requests[row.index].draft))
            stats.drafted += len(out[id(row)])
    return out


def _accept(row: Row, guess: list[int], predicted: list[int], draft_length: int) -> list[int]:
    accepted = 0
    while accepted < len(guess) and predicted[accepted] == guess[accepted]:
        accepted += 1
    row.draft_at += accepted
    if accepted < len(guess):
        row.drafting, row.diverged = False, True
        # look for the draft again later, less eagerly after each verification that bought little
        row.misses = row.misses + 1 if accepted < 16 else 0
        row.resync_after = row.generated + accepted + 1 + RESYNC_NGRAM * (1 << min(row.misses, 10))
        return guess[:accepted] + [predicted[accepted]]
    if row.draft_at >= draft_length:
        row.drafting = False  # the draft is used up: go on decoding
        row.resync_after = 1 << 62
    return guess


def resync(row: Row, draft: list[int]) -> bool:
    """Resume draft mode if the row's last RESYNC_NGRAM tokens occur in its draft; it then continues after them."""
    if row.generated < row.resync_after or row.generated < RESYNC_NGRAM:
        return False
    if row.ngrams is None:
        row.ngrams = {}
        for i in range(len(draft) - RESYNC_NGRAM, -1, -1):  # earliest position wins
            row.ngrams[tuple(draft[i:i + RESYNC_NGRAM])] = i
    found = row.ngrams.get(tuple(row.tokens[-RESYNC_NGRAM:]))
    if found is None or found + RESYNC_NGRAM >= len(draft):
        return False
    row.draft_at, row.drafting = found + RESYNC_NGRAM, True
    return True
