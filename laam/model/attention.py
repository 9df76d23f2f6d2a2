"""Attention for models with many tiny heads (the original 5M model has 32 heads of size 2).

PyTorch's SDPA kernels on CPU spend ~1 ms a call on such shapes, most of a decoding step; two batched
matmuls over query heads grouped by their key/value head do the same work several times faster. It is
registered with transformers' AttentionInterface, so the stock LlamaForCausalLM forward uses it.
"""

from __future__ import annotations

import torch

SMALL_HEADS = "laam_small_heads"


def small_head_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention for many tiny heads (the original 5M model has 32 heads of size 2).

    PyTorch's SDPA kernels on CPU spend ~1 ms a call on such shapes, most of a decoding step; two batched
    matmuls over query heads grouped by their key/value head do the same work several times faster.
    The mask is transformers' SDPA boolean mask (True: attend); masked scores get the dtype's minimum,
    not -inf, so fully padded rows stay finite.
    """
    batch, heads, q_len, dim = query.shape
    if q_len > 16:  # reading a window: SDPA's fused kernel avoids materializing [heads, q, kv] scores
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, scaling=scaling, dropout=dropout,
                                      **kwargs)
    kv_heads, kv_len = key.shape[1], key.shape[2]
    groups = heads // kv_heads
    scaling = dim ** -0.5 if scaling is None else scaling
    q = (query * scaling).reshape(batch, kv_heads, groups * q_len, dim)  # head h reads kv head h // groups
    scores = torch.matmul(q, key.transpose(-1, -2)).view(batch, kv_heads, groups, q_len, kv_len)
    if attention_mask is None:  # transformers skips the mask when plain causal attention is enough
        attention_mask = torch.ones(q_len, kv_len, dtype=torch.bool).tril(kv_len - q_len)
    elif attention_mask.dim() == 4:
        attention_mask = attention_mask[:, :, None]  # [batch, 1, 1, q, kv] over the groups
    if attention_mask.dtype == torch.bool:
        scores.masked_fill_(~attention_mask, torch.finfo(scores.dtype).min)
    else:
        scores += attention_mask
    probs = scores.softmax(-1).view(batch, kv_heads, groups * q_len, kv_len)
    out = torch.matmul(probs, value).view(batch, heads, q_len, dim)
    return out.transpose(1, 2).contiguous(), None


def register_small_head_attention() -> str:
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    AttentionInterface.register(SMALL_HEADS, small_head_attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(SMALL_HEADS, sdpa_mask)
    return SMALL_HEADS


def attention_for(config) -> str:
    """Our small-head attention where heads are tiny (<= 8 dims), SDPA otherwise."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return register_small_head_attention() if head_dim <= 8 else "sdpa"
