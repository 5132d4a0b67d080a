"""Pixel-space map operations with scipy's exact semantics, on the model's device."""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from vip2clip.model.constants import GAUSSIAN_TRUNCATE


def upsample_patch_grid(values: torch.Tensor, size: int) -> torch.Tensor:
    """Patch values ``(B, N, C)`` (row-major square grid) -> ``(B, C, size, size)``, bilinear,
    ``align_corners=False``."""
    batch, patches, channels = values.shape
    grid = math.isqrt(patches)
    square = values.transpose(1, 2).reshape(batch, channels, grid, grid)
    return F.interpolate(square, size=(size, size), mode="bilinear", align_corners=False)


def gaussian_kernel(sigma: float, truncate: float = GAUSSIAN_TRUNCATE) -> torch.Tensor:
    """The normalised 1-D kernel ``scipy.ndimage.gaussian_filter`` uses, in float64."""
    radius = int(truncate * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-0.5 * (x / sigma) ** 2)
    return weights / weights.sum()


def symmetric_indices(length: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices padding an axis by ``pad`` on each side, repeating the edge sample
    (scipy's ``mode="reflect"``, numpy's ``"symmetric"``), valid for any ``pad``."""
    period = 2 * length
    index = torch.arange(-pad, length + pad, device=device) % period
    return torch.where(index >= length, period - 1 - index, index)


@functools.lru_cache(maxsize=16)
def gaussian_matrix(
    length: int, sigma: float, truncate: float, device: torch.device
) -> torch.Tensor:
    """``(length, length)`` float64 matrix ``G`` with ``G @ x`` = the 1-D scipy Gaussian of
    ``x`` along its first axis, edge-repeating reflection folded into the weights."""
    # Cached across calls: build a normal tensor even when first asked under inference
    # mode, so training can use it in autograd later in the same process.
    with torch.inference_mode(False):
        kernel = gaussian_kernel(sigma, truncate)
        radius = (kernel.numel() - 1) // 2
        source = symmetric_indices(length, radius, torch.device("cpu"))  # padded pos -> sample
        rows = torch.arange(length).unsqueeze(1) + torch.arange(kernel.numel())  # (L, K)
        matrix = torch.zeros(length, length, dtype=torch.float64)
        matrix.scatter_add_(1, source[rows], kernel.expand(length, -1).contiguous())
        return matrix.to(device)


def gaussian_blur(
    maps: torch.Tensor, sigma: float, truncate: float = GAUSSIAN_TRUNCATE
) -> torch.Tensor:
    """Separable Gaussian of ``(B, H, W)`` maps matching ``scipy.ndimage.gaussian_filter``
    (edge-repeating reflect, ``truncate`` radius, float64 accumulation); returns the input dtype.

    Both passes are matrix products with cached banded matrices, which is far faster
    than a 65-tap float64 convolution on CPU and GPU alike.
    """
    if sigma <= 0:
        return maps
    rows = gaussian_matrix(maps.shape[-2], float(sigma), float(truncate), maps.device)
    cols = gaussian_matrix(maps.shape[-1], float(sigma), float(truncate), maps.device)
    blurred = rows @ maps.to(torch.float64) @ cols.T
    return blurred.to(maps.dtype)
