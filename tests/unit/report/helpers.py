"""A committed two-night table whose night-2 images exist on disk (except one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.unit.query.builders import Row, image_uri, two_nights

DELETED_IMAGE = 2  # index of the image deleted since scoring (the top anomaly of night 2)


def report_table(root: Path) -> tuple[str, str]:
    """Results URI and image folder; images are 256x192 noise PNGs, one deleted."""
    images, results = root / "images", str(root / "results")
    images.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(5):
        pixels = rng.integers(0, 256, (Row("").size[1], Row("").size[0], 3), dtype=np.uint8)
        if i != DELETED_IMAGE:
            Image.fromarray(pixels).save(image_uri(str(images), i))
    two_nights(results, str(images))
    return results, str(images)
