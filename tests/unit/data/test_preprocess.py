"""Model-input normalisation (resizing is checked bit-exact in tests/unit/model/test_parity.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image

from vip2clip.data.preprocess import normalize_rgb, preprocess_image


def test_normalize_is_to_tensor_then_normalize() -> None:
    rgb = torch.randint(0, 256, (2, 5, 5, 3), dtype=torch.uint8, generator=torch.Generator())
    out = normalize_rgb(rgb)
    assert out.shape == (2, 3, 5, 5) and out.dtype == torch.float32
    mean = torch.tensor(OPENAI_DATASET_MEAN, dtype=torch.float64).reshape(3, 1, 1)
    std = torch.tensor(OPENAI_DATASET_STD, dtype=torch.float64).reshape(3, 1, 1)
    expected = (rgb.permute(0, 3, 1, 2).double() / 255 - mean) / std
    torch.testing.assert_close(out.double(), expected, rtol=0, atol=1e-6)


def test_single_image_and_batch_agree_bitwise() -> None:
    rgb = torch.randint(0, 256, (3, 7, 7, 3), dtype=torch.uint8)
    batch = normalize_rgb(rgb)
    for i in range(3):
        assert torch.equal(normalize_rgb(rgb[i]), batch[i])


@pytest.mark.parametrize(
    "bad", [torch.zeros(4, 4, 3), torch.zeros(4, 4, 4, dtype=torch.uint8)], ids=["float", "rgba"]
)
def test_only_uint8_rgb_is_accepted(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="uint8"):
        normalize_rgb(bad)


def test_preprocess_image_resizes_then_normalises() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), np.uint8))
    out = preprocess_image(image, 16)
    resized = np.array(image.resize((16, 16), Image.Resampling.BICUBIC))
    assert torch.equal(out, normalize_rgb(torch.from_numpy(resized)))
