"""Mask PNG encoding: compact, lossless up to 8-bit quantisation."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from vip2clip.results import MASK_QUANTISATION_ERROR, decode_mask, encode_mask


def test_round_trip_within_half_a_quantisation_step() -> None:
    anomaly_map = np.random.default_rng(0).random((112, 112))
    decoded = decode_mask(encode_mask(anomaly_map))
    assert decoded.dtype == np.float32 and decoded.shape == (112, 112)
    assert np.abs(decoded - anomaly_map).max() <= MASK_QUANTISATION_ERROR + 1e-7
    assert pytest.approx(1 / 255 / 2) == MASK_QUANTISATION_ERROR


def test_mask_is_an_8_bit_grey_png_of_model_resolution() -> None:
    png = encode_mask(np.zeros((24, 40), dtype=np.float32))
    with Image.open(io.BytesIO(png)) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "L", (40, 24))


def test_extremes_are_exact_and_out_of_range_is_clipped() -> None:
    anomaly_map = np.array([[0.0, 1.0, -0.5, 3.0]] * 2)
    decoded = decode_mask(encode_mask(anomaly_map))
    assert decoded[0].tolist() == [0.0, 1.0, 0.0, 1.0]


def test_smooth_maps_are_compact() -> None:
    y, x = np.mgrid[0:518, 0:518] / 518.0
    smooth = np.exp(-((x - 0.5) ** 2 + (y - 0.4) ** 2) * 20)
    assert len(encode_mask(smooth)) < smooth.size // 10


@pytest.mark.parametrize("bad", [np.zeros(5), np.zeros((2, 2, 2)), np.array([[np.nan, 0.0]])])
def test_invalid_maps_are_refused(bad: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode_mask(bad)
