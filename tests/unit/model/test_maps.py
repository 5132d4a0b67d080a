"""Upsampling and Gaussian smoothing with scipy's exact semantics."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F

from vip2clip.model.maps import gaussian_blur, symmetric_indices, upsample_patch_grid


@pytest.mark.parametrize(("size", "sigma"), [(140, 8.0), (37, 8.0), (20, 4.0), (64, 1.5), (9, 3.0)])
def test_gaussian_blur_matches_scipy(size: int, sigma: float) -> None:
    rng = np.random.default_rng(size)
    maps = rng.random((2, size, size), dtype=np.float32)
    ours = gaussian_blur(torch.from_numpy(maps), sigma).numpy()
    for i in range(2):
        wanted = scipy.ndimage.gaussian_filter(maps[i], sigma=sigma, axes=(0, 1))
        assert np.abs(ours[i] - wanted).max() < 1e-6


def test_sigma_zero_is_identity() -> None:
    maps = torch.rand(1, 5, 5)
    assert torch.equal(gaussian_blur(maps, 0.0), maps)


@pytest.mark.parametrize(("length", "pad"), [(3, 4), (5, 2), (4, 11), (1, 3)])
def test_symmetric_indices_match_numpy_symmetric_padding(length: int, pad: int) -> None:
    got = symmetric_indices(length, pad, torch.device("cpu")).numpy()
    assert np.array_equal(got, np.pad(np.arange(length), pad, mode="symmetric"))


def test_upsample_patch_grid_is_row_major_bilinear() -> None:
    values = torch.arange(2 * 9 * 2, dtype=torch.float32).reshape(2, 9, 2)
    up = upsample_patch_grid(values, 12)
    square = values.transpose(1, 2).reshape(2, 2, 3, 3)
    assert square[0, 1, 0, 2] == values[0, 2, 1]  # row-major: patch 2 is row 0, column 2
    expected = F.interpolate(square, size=(12, 12), mode="bilinear", align_corners=False)
    assert torch.equal(up, expected)


def test_blur_after_inference_mode_still_supports_autograd() -> None:
    with torch.inference_mode():
        gaussian_blur(torch.rand(1, 23, 23), 2.0)  # fills the cache under inference mode
    maps = torch.rand(1, 23, 23, requires_grad=True)
    gaussian_blur(maps, 2.0).sum().backward()
    assert maps.grad is not None and torch.isfinite(maps.grad).all()
