"""Mask loading as the official dataset code does it: >0, bilinear resize, ToTensor, >0.5."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from vip2clip.data.masks import binarize_mask_image, empty_mask, mask_to_tensor


def _mask(array: np.ndarray, mode: str = "L") -> Image.Image:
    return Image.fromarray(array.astype(np.uint8), mode="L").convert(mode)


def test_any_nonzero_value_is_a_defect() -> None:
    values = np.array([[0, 1], [128, 255]])
    binary = np.asarray(binarize_mask_image(_mask(values)))
    assert binary.tolist() == [[0, 255], [255, 255]]


@pytest.mark.parametrize("mode", ["L", "1", "RGB", "RGBA", "P"])
def test_same_size_mask_is_kept_exactly_in_every_mode(mode: str) -> None:
    rng = np.random.default_rng(0)
    on = rng.random((16, 16)) > 0.7
    tensor = mask_to_tensor(_mask(on * 255, mode), 16)
    assert tensor.dtype == torch.float32
    assert torch.equal(tensor, torch.from_numpy(on.astype(np.float32)))


def test_downscale_keeps_a_large_block() -> None:
    # 8x8 -> 2x2 with PIL's antialiased bilinear (triangle of support 4 input pixels):
    # the top-left output sees 3.0 of 3.5 filter weight per axis on -> 0.73 > 0.5.
    array = np.zeros((8, 8))
    array[:4, :4] = 255
    assert mask_to_tensor(_mask(array), 2).tolist() == [[1.0, 0.0], [0.0, 0.0]]


def test_downscale_drops_a_small_block_as_the_official_code_does() -> None:
    # a 2x2 corner block gets 1.5 / 3.5 weight per axis -> 0.18 < 0.5: the defect vanishes.
    array = np.zeros((8, 8))
    array[:2, :2] = 255
    assert mask_to_tensor(_mask(array), 2).sum().item() == 0.0


def test_upscale_of_a_centre_pixel_covers_its_footprint() -> None:
    array = np.zeros((3, 3))
    array[1, 1] = 255
    tensor = mask_to_tensor(_mask(array), 9)
    assert tensor.sum().item() > 0
    assert tensor[4, 4] == 1.0
    assert tensor[0].sum() == 0 and tensor[:, 0].sum() == 0  # border stays normal


def test_empty_mask() -> None:
    mask = empty_mask(5)
    assert mask.shape == (5, 5) and mask.dtype == torch.float32 and mask.sum() == 0
