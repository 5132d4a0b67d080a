"""Report pictures: colour scale, thumbnails, overlays, and sources that are gone."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vip2clip.report.images import (
    BBOX_COLOUR,
    THUMBNAIL_SIDE,
    data_uri,
    heatmap,
    mask_picture,
    overlay_picture,
    pictures,
    thumbnail_size,
)
from vip2clip.results import encode_mask


def _decode(uri: str) -> Image.Image:
    header, payload = uri.split(",", 1)
    assert header in ("data:image/png;base64", "data:image/jpeg;base64")
    return Image.open(io.BytesIO(base64.b64decode(payload)))


def _hot_corner_map(side: int = 32) -> np.ndarray:
    anomaly_map = np.zeros((side, side))
    anomaly_map[: side // 4, : side // 4] = 1.0  # top-left quarter-by-quarter is anomalous
    return anomaly_map


def test_heatmap_runs_from_dark_blue_to_dark_red() -> None:
    colours = heatmap(np.array([[0.0, 0.5, 1.0, -3.0, 7.0]]))[0]
    assert colours[0].tolist() == [0, 0, 128]
    assert colours[2].tolist() == [128, 0, 0]
    assert colours[3].tolist() == colours[0].tolist()  # clipped
    assert colours[4].tolist() == colours[2].tolist()
    reds = heatmap(np.linspace(0.3, 0.85, 6)[None, :])[0][:, 0]
    assert (np.diff(reds.astype(int)) >= 0).all()


@pytest.mark.parametrize(
    ("size", "expected"),
    [((1024, 512), (256, 128)), ((100, 60), (100, 60)), ((3, 3000), (1, 256))],
)
def test_thumbnail_size(size: tuple[int, int], expected: tuple[int, int]) -> None:
    assert thumbnail_size(size) == expected


def test_mask_picture_covers_the_whole_image() -> None:
    picture = np.asarray(mask_picture(_hot_corner_map(), (200, 100)))
    assert picture.shape == (100, 200, 3)
    assert picture[5, 10, 0] > 100 and picture[5, 10, 2] < 50  # hot corner is red
    assert picture[90, 190, 2] > 100 and picture[90, 190, 0] < 50  # cold elsewhere is blue


def test_overlay_blends_and_outlines_the_region() -> None:
    grey = Image.new("RGB", (512, 256), (128, 128, 128))
    bbox = (0, 0, 128, 64)  # the hot corner in original pixels
    overlay = np.asarray(overlay_picture(grey, _hot_corner_map(), bbox))
    assert overlay.shape == (128, THUMBNAIL_SIDE, 3)
    assert overlay[16, 16, 0] > overlay[16, 16, 2]  # inside: reddish
    assert overlay[100, 200, 2] > overlay[100, 200, 0]  # outside: bluish
    assert tuple(overlay[31, 20]) == BBOX_COLOUR  # bottom edge of the scaled box


@pytest.fixture
def source(tmp_path: Path) -> str:
    path = tmp_path / "img.png"
    Image.new("RGB", (300, 200), (10, 200, 10)).save(path)
    return str(path)


def test_pictures_of_a_present_source(source: str) -> None:
    got = pictures(source, encode_mask(_hot_corner_map()), None, (300, 200))
    assert got.source_problem is None and got.overlay and got.mask
    assert _decode(got.overlay).size == (256, 171)
    assert _decode(got.mask).size == (256, 171)


def test_missing_source_leaves_the_mask(tmp_path: Path) -> None:
    got = pictures(str(tmp_path / "deleted.png"), encode_mask(_hot_corner_map()), None, (90, 30))
    assert got.overlay is None
    assert got.mask is not None and _decode(got.mask).size == (90, 30)
    assert got.source_problem is not None and "does not exist" in got.source_problem


def test_undecodable_source_leaves_the_mask(tmp_path: Path) -> None:
    path = tmp_path / "replaced.png"
    path.write_bytes(b"not an image any more")
    got = pictures(str(path), encode_mask(_hot_corner_map()), None, None)
    assert got.overlay is None and got.mask is not None
    assert _decode(got.mask).size == (32, 32)  # no size known: the map's own
    assert got.source_problem is not None and got.source_problem.startswith("not_an_image")


@pytest.mark.parametrize("mask_png", [None, b"", b"\x89PNG damaged"])
def test_row_without_a_readable_mask_shows_the_image(source: str, mask_png: bytes | None) -> None:
    got = pictures(source, mask_png, None, None)
    assert got.mask is None and got.overlay is not None and got.source_problem is None


def test_data_uri_round_trip() -> None:
    image = Image.new("RGB", (7, 5), (1, 2, 3))
    assert np.array_equal(np.asarray(_decode(data_uri(image))), np.asarray(image))
