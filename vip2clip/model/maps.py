"""Pixel-space map operations with scipy's exact semantics, on the model's device."""

from __future__ import annotations

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


def gaussian_blur(
    maps: torch.Tensor, sigma: float, truncate: float = GAUSSIAN_TRUNCATE
) -> torch.Tensor:
    """Separable Gaussian of ``(B, H, W)`` maps matching ``scipy.ndimage.gaussian_filter``
    (edge-repeating reflect, ``truncate`` radius, float64 accumulation); returns the input dtype.
    """
    if sigma <= 0:
        return maps
    kernel = gaussian_kernel(sigma, truncate).to(maps.device)
    radius = (kernel.numel() - 1) // 2
    x = maps.to(torch.float64).unsqueeze(1)  # (B, 1, H, W)
    for axis in (2, 3):  # rows first, then columns, as scipy filters axis 0 then 1
        x = x.index_select(axis, symmetric_indices(x.shape[axis], radius, x.device))
        shape = (1, 1, kernel.numel(), 1) if axis == 2 else (1, 1, 1, kernel.numel())
        x = F.conv2d(x, kernel.view(shape))
    return x.squeeze(1).to(maps.dtype)
