"""Tapped patch features and the global image feature from a frozen open_clip ViT."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from open_clip.transformer import VisionTransformer

from vip2clip.model.attention import run_blocks

logger = logging.getLogger(__name__)


class VisualFeatures(NamedTuple):
    """What the frozen image tower gives the learned heads.

    ``taps``: ``(T, B, 1 + N, D)`` projected tokens after each tapped block (CLS first);
    ``global_feature``: ``(B, D)`` L2-normalised final CLS token.
    Both depend only on the backbone and the pixels, so they can be cached.
    """

    taps: torch.Tensor
    global_feature: torch.Tensor


def resize_positional_embedding(table: torch.Tensor, grid: int) -> torch.Tensor:
    """Resize a ``(1 + G*G, W)`` positional table to ``grid`` x ``grid`` patches.

    Bilinear, ``align_corners=False``, no antialias, CLS row unchanged (the official
    behaviour). Returns a new tensor; the loaded weights are never modified.
    """
    cls_row, patch_rows = table[:1], table[1:]
    old = math.isqrt(patch_rows.shape[0])
    if old * old != patch_rows.shape[0]:
        raise ValueError(f"positional table of {patch_rows.shape[0]} patches is not square")
    if old == grid:
        return table
    square = patch_rows.reshape(1, old, old, -1).permute(0, 3, 1, 2)
    resized = F.interpolate(square, size=(grid, grid), mode="bilinear", align_corners=False)
    return torch.cat([cls_row, resized.permute(0, 2, 3, 1).reshape(grid * grid, -1)])


def encode_image(
    visual: VisionTransformer, pixels: torch.Tensor, taps: Sequence[int]
) -> VisualFeatures:
    """Run the ViT on ``pixels`` ``(B, 3, S, S)`` and tap it after 1-based blocks ``taps``.

    Each tap is the whole token sequence after ``ln_post`` and ``@ proj``; the global
    feature is the final block's CLS token ``@ proj`` *without* ``ln_post``, normalised.
    """
    patch = visual.conv1.kernel_size[0]
    grid = pixels.shape[-1] // patch
    x = visual.conv1(pixels.to(visual.conv1.weight.dtype))  # (B, W, g, g)
    x = x.flatten(2).transpose(1, 2)  # (B, N, W)
    cls = visual.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1)
    x = x + resize_positional_embedding(visual.positional_embedding, grid).to(x.dtype)
    x = visual.ln_pre(x)
    by_block: dict[int, torch.Tensor] = {}
    blocks = run_blocks(visual.transformer.resblocks, x, batch_first=visual.transformer.batch_first)
    for index, x in enumerate(blocks, start=1):
        if index in taps:
            by_block[index] = visual.ln_post(x) @ visual.proj
    global_feature = F.normalize(x[:, 0] @ visual.proj, dim=-1)
    return VisualFeatures(torch.stack([by_block[t] for t in taps]), global_feature)


class ImageTower:
    """:func:`encode_image`, optionally through ``torch.compile``.

    Compiling fuses the element-wise work between the matrix products (QuickGELU, layer
    norms, residual adds, layout copies) and is measured in ``benchmarks/model_forward.py``.
    The first batch of each new shape pays the compilation. Compiling needs a C++ compiler
    on CPU and Triton on GPU: if compilation fails, the tower logs why once and runs eagerly
    from then on, with the same results.
    """

    def __init__(self, use_compile: bool) -> None:
        self._compiled = torch.compile(encode_image) if use_compile else None

    @property
    def compiled(self) -> bool:
        """Whether calls still go through the compiled function."""
        return self._compiled is not None

    def __call__(
        self, visual: VisionTransformer, pixels: torch.Tensor, taps: Sequence[int]
    ) -> VisualFeatures:
        if self._compiled is not None:
            try:
                features: VisualFeatures = self._compiled(visual, pixels, tuple(taps))
                return features
            except COMPILE_ERRORS as exc:
                reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                logger.warning("torch.compile of the image tower failed, running eager: %s", reason)
                self._compiled = None
        return encode_image(visual, pixels, taps)


# What a failed compilation raises (a missing or broken compiler, an unsupported op).
COMPILE_ERRORS: tuple[type[Exception], ...] = (
    torch._dynamo.exc.TorchDynamoException,
    torch._inductor.exc.InductorError,
)
