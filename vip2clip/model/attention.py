"""Transformer blocks of the frozen towers run with fused scaled-dot-product attention.

open_clip's blocks call ``nn.MultiheadAttention``, whose CPU fast path computes
attention with explicit batched matmuls; calling ``F.scaled_dot_product_attention``
on the same weights uses the fused (flash) kernels on CPU and GPU alike. Outputs
equal the module's within float rounding.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock
from torch import nn


def run_blocks(
    blocks: nn.ModuleList, x: torch.Tensor, *, causal: bool = False, batch_first: bool = True
) -> Iterator[torch.Tensor]:
    """Run ``blocks`` over ``x`` ``(B, L, D)``, yielding the output after every block."""
    for block in blocks:
        x = run_block(block, x, causal=causal, batch_first=batch_first)
        yield x


def last_block_output(
    blocks: nn.ModuleList, x: torch.Tensor, *, causal: bool = False, batch_first: bool = True
) -> torch.Tensor:
    """Run ``blocks`` over ``x`` ``(B, L, D)`` and return the final output."""
    for block in blocks:
        x = run_block(block, x, causal=causal, batch_first=batch_first)
    return x


def run_block(
    block: nn.Module, x: torch.Tensor, *, causal: bool = False, batch_first: bool = True
) -> torch.Tensor:
    """One pre-LN residual block over ``(B, L, D)`` with fused attention when possible."""
    out: torch.Tensor
    if not _fusable(block):
        mask = _causal_mask(x.shape[1], x) if causal else None
        if batch_first:
            out = block(x, attn_mask=mask)
            return out
        out = block(x.transpose(0, 1), attn_mask=mask)
        return out.transpose(0, 1)
    parts: Any = block  # open_clip's ResidualAttentionBlock (untyped)
    x = x + parts.ls_1(_attend(parts.attn, parts.ln_1(x), causal))
    out = x + parts.ls_2(parts.mlp(parts.ln_2(x)))
    return out


def _attend(attention: nn.MultiheadAttention, x: torch.Tensor, causal: bool) -> torch.Tensor:
    batch, length, width = x.shape
    heads = attention.num_heads
    qkv = F.linear(x, attention.in_proj_weight, attention.in_proj_bias)
    q, k, v = qkv.view(batch, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)  # (B, H, L, d)
    out = out.transpose(1, 2).reshape(batch, length, width)
    return F.linear(out, attention.out_proj.weight, attention.out_proj.bias)


def _fusable(block: nn.Module) -> bool:
    attention = getattr(block, "attn", None)
    return (
        type(block) is ResidualAttentionBlock
        and isinstance(attention, nn.MultiheadAttention)
        and attention.in_proj_weight is not None
        and not hasattr(block, "ln_1_kv")
    )


def _causal_mask(length: int, like: torch.Tensor) -> torch.Tensor:
    mask = torch.full((length, length), float("-inf"), device=like.device, dtype=like.dtype)
    return mask.triu(1)
