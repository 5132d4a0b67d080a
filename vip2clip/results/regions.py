"""Region statistics of an anomaly map, for SQL filters on the results table.

The map (model resolution ``S x S``) is thresholded at ``pixel_threshold``
(``>=``); the largest 8-connected component's bounding box is scaled to the
original image, whose pixels the preprocessing squashed onto the S x S grid
(plain resize, aspect ratio not kept).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class RegionStats:
    """Summary of one anomaly map.

    The bounding box is half-open, ``[x0, x1) x [y0, y1)``, in original-image
    pixel coordinates (x = column, y = row); all four are ``None`` when no pixel
    reaches the threshold.
    """

    max_pixel_score: float
    anomalous_area_fraction: float
    bbox_x0: int | None
    bbox_y0: int | None
    bbox_x1: int | None
    bbox_y1: int | None

    @property
    def has_region(self) -> bool:
        """Whether any pixel reached the threshold."""
        return self.bbox_x0 is not None


def region_stats(
    anomaly_map: np.ndarray, pixel_threshold: float, original_size: tuple[int, int]
) -> RegionStats:
    """Max score, thresholded area fraction and largest-region bbox of a ``(H, W)`` map.

    Args:
        anomaly_map: float ``(H, W)`` map at model resolution.
        pixel_threshold: pixels with ``score >= pixel_threshold`` are anomalous.
        original_size: ``(width, height)`` of the original image, as PIL's ``Image.size``.
    """
    values = np.asarray(anomaly_map, dtype=np.float64)
    if values.ndim != 2 or 0 in values.shape:
        raise ValueError(f"anomaly map must be a non-empty (H, W) array, got {values.shape}")
    width, height = original_size
    if width <= 0 or height <= 0:
        raise ValueError(f"original size must be positive, got {original_size}")
    anomalous = values >= pixel_threshold
    fraction = float(anomalous.mean())
    box = _largest_component_box(anomalous)
    if box is None:
        return RegionStats(float(values.max()), fraction, None, None, None, None)
    rows, cols = values.shape
    row0, row1, col0, col1 = box
    return RegionStats(
        max_pixel_score=float(values.max()),
        anomalous_area_fraction=fraction,
        bbox_x0=_scale_down(col0, width, cols),
        bbox_y0=_scale_down(row0, height, rows),
        bbox_x1=_scale_up(col1, width, cols),
        bbox_y1=_scale_up(row1, height, rows),
    )


def _largest_component_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """(row0, row1, col0, col1), half-open, of the largest component (ties: first in scan order)."""
    labels, count = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    if count == 0:
        return None
    sizes = np.bincount(labels.ravel())[1:]
    largest = int(np.argmax(sizes)) + 1
    rows_slice, cols_slice = ndimage.find_objects(labels)[largest - 1]
    return rows_slice.start, rows_slice.stop, cols_slice.start, cols_slice.stop


def _scale_down(index: int, original: int, model: int) -> int:
    return min(original, math.floor(index * original / model))


def _scale_up(index: int, original: int, model: int) -> int:
    return min(original, math.ceil(index * original / model))
