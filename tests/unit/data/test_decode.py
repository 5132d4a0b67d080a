"""decode_image: every corpus entry gets its expected outcome; policies hold pixel by pixel."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from tests.fixtures.bad_inputs import OK, BadInput, bad_input_corpus
from vip2clip.data.decode import (
    DECODE_REASONS,
    ERROR_REASONS,
    MAX_IMAGE_PIXELS_DEFAULT,
    TRANSIENT_REASONS,
    decode_image,
)
from vip2clip.data.preprocess import preprocess_image
from vip2clip.errors import ImageDecodeError

CORPUS = bad_input_corpus()
MIN_CORPUS_KINDS = 15  # issue 8: at least 15 kinds of bad input


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _outcome(data: bytes, **limits: int) -> str:
    try:
        decode_image(data, **limits)  # type: ignore[arg-type]
    except ImageDecodeError as exc:
        return exc.reason
    return OK


def test_corpus_is_broad_and_expectations_are_known_reasons() -> None:
    assert len(CORPUS) >= MIN_CORPUS_KINDS
    assert len({item.key for item in CORPUS}) == len(CORPUS)
    assert {item.expected for item in CORPUS} - {OK} <= DECODE_REASONS
    assert TRANSIENT_REASONS <= ERROR_REASONS and DECODE_REASONS <= ERROR_REASONS


@pytest.mark.parametrize("item", CORPUS, ids=[item.key for item in CORPUS])
def test_corpus_outcome(item: BadInput) -> None:
    assert _outcome(item.data) == item.expected


@pytest.mark.parametrize("item", [i for i in CORPUS if i.expected == OK], ids=lambda i: i.key)
def test_every_decodable_image_is_loaded_and_preprocessable(item: BadInput) -> None:
    image = decode_image(item.data)
    pixels = preprocess_image(image, 32)
    assert pixels.shape == (3, 32, 32)
    assert bool(pixels.isfinite().all())


def test_error_carries_reason_and_detail() -> None:
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(b"definitely not an image")
    assert caught.value.reason == "not_an_image"
    assert caught.value.detail and "not_an_image" in str(caught.value)


def test_pixel_limit_is_configurable_and_checked_before_decoding() -> None:
    data = _png(Image.new("RGB", (40, 30)))
    assert _outcome(data, max_pixels=40 * 30) == OK
    assert _outcome(data, max_pixels=40 * 30 - 1) == "decompression_bomb"


def test_pillow_global_limit_is_untouched() -> None:
    before = Image.MAX_IMAGE_PIXELS
    for item in CORPUS:
        _outcome(item.data)
    assert before == Image.MAX_IMAGE_PIXELS
    assert 2 * (before or 0) > MAX_IMAGE_PIXELS_DEFAULT


def test_minimum_side_and_aspect_ratio_are_configurable() -> None:
    data = _png(Image.new("L", (300, 10)))
    assert _outcome(data) == "image_too_small"
    assert _outcome(data, min_side=10) == OK
    assert _outcome(data, min_side=10, max_aspect_ratio=20) == "extreme_aspect_ratio"


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    levels = np.array([[0, 257, 65535, 32896]], dtype=np.uint16).repeat(16, axis=0)
    levels = np.tile(levels, (1, 4))
    image = decode_image(_png(Image.fromarray(levels)))
    assert image.mode == "L"
    got = np.asarray(image)[0, :4]
    assert got.tolist() == [0, 1, 255, 128]


def test_exif_orientation_is_applied() -> None:
    item = next(i for i in CORPUS if i.key.endswith("exif-rotated.jpg"))
    stored = Image.open(io.BytesIO(item.data))
    width, height = stored.size
    assert decode_image(item.data).size == (height, width)


def test_passthrough_modes_keep_their_pixels() -> None:
    rng = np.random.default_rng(0)
    rgba = Image.fromarray(rng.integers(0, 256, (20, 24, 4), dtype=np.uint8))
    decoded = decode_image(_png(rgba))
    assert decoded.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(decoded), np.asarray(rgba))


def test_truncation_is_detected_at_decode_time() -> None:
    data = _png(Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)))
    assert _outcome(data) == OK
    assert _outcome(data[: len(data) - 40]) == "truncated_image"
