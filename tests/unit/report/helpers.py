"""A committed two-night table whose night-2 images exist on disk (except one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.unit.query.builders import Row, TwoNights, image_uri, two_nights
from vip2clip.results import ResultsTable

DELETED_IMAGE = 2  # index of the image deleted since scoring (the top anomaly of night 2)


def report_table(results: ResultsTable, root: Path) -> TwoNights:
    """Fill ``results`` with :func:`two_nights` over images in ``root/images``: 256x192
    noise PNGs, one deleted."""
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    width, height = Row("").size
    for i in range(5):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        if i != DELETED_IMAGE:
            Image.fromarray(pixels).save(image_uri(str(images), i))
    return two_nights(results, str(images))
