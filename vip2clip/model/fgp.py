"""FGP: fine-grained perception — text embeddings attend over one layer's patch tokens."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from vip2clip.model.constants import FGP_HEADS


class FineGrainedPerception(nn.Module):
    """Cross-attention of the two text embeddings (queries) over patch tokens (keys/values).

    Unlike standard attention there is no ``1/sqrt(d)`` scaling (official behaviour); the
    output is projected and L2-normalised. One module is shared by every tapped layer.
    """

    def __init__(self, dim: int, heads: int = FGP_HEADS) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"embedding width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, text: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        """``text`` ``(B, Q, D)``, ``patches`` ``(B, N, D)`` -> normalised ``(B, Q, D)``."""
        q = self._split(self.q_proj(text))  # (B, H, Q, d)
        k = self._split(self.k_proj(patches))  # (B, H, N, d)
        v = self._split(self.v_proj(patches))
        attended = F.scaled_dot_product_attention(q, k, v, scale=1.0)  # softmax over patches
        merged = attended.transpose(1, 2).flatten(2)  # (B, Q, D)
        return F.normalize(self.out_proj(merged), dim=-1)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        return x.view(batch, length, self.heads, dim // self.heads).transpose(1, 2)
