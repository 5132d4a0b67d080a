"""Region statistics: thresholded area, largest component, bbox in original pixels."""

from __future__ import annotations

import numpy as np
import pytest

from vip2clip.results import region_stats


def _map_with_blobs() -> np.ndarray:
    anomaly_map = np.full((10, 10), 0.1)
    anomaly_map[1:3, 1:3] = 0.6  # 4 px
    anomaly_map[5:9, 4:7] = 0.8  # 12 px, the largest
    anomaly_map[6, 5] = 0.95
    return anomaly_map


def test_stats_at_model_resolution() -> None:
    stats = region_stats(_map_with_blobs(), 0.5, (10, 10))
    assert stats.max_pixel_score == pytest.approx(0.95)
    assert stats.anomalous_area_fraction == pytest.approx(16 / 100)
    assert (stats.bbox_x0, stats.bbox_y0, stats.bbox_x1, stats.bbox_y1) == (4, 5, 7, 9)
    assert stats.has_region


def test_bbox_scales_to_original_width_and_height_separately() -> None:
    stats = region_stats(_map_with_blobs(), 0.5, (200, 50))  # (width, height)
    assert (stats.bbox_x0, stats.bbox_x1) == (80, 140)
    assert (stats.bbox_y0, stats.bbox_y1) == (25, 45)


def test_scaled_bbox_covers_the_region_for_non_integer_ratios() -> None:
    stats = region_stats(_map_with_blobs(), 0.5, (33, 17))
    assert stats.bbox_x0 == 13 and stats.bbox_x1 == 24  # floor(4*3.3), ceil(7*3.3)
    assert stats.bbox_y0 == 8 and stats.bbox_y1 == 16  # floor(5*1.7), ceil(9*1.7)


def test_diagonal_pixels_form_one_region() -> None:
    anomaly_map = np.zeros((6, 6))
    anomaly_map[[0, 1, 2, 3], [0, 1, 2, 3]] = 1.0
    anomaly_map[5, 5] = 1.0
    stats = region_stats(anomaly_map, 0.5, (6, 6))
    assert (stats.bbox_x0, stats.bbox_y0, stats.bbox_x1, stats.bbox_y1) == (0, 0, 4, 4)


def test_threshold_is_inclusive_and_empty_maps_have_no_bbox() -> None:
    anomaly_map = np.full((4, 4), 0.5)
    assert region_stats(anomaly_map, 0.5, (4, 4)).anomalous_area_fraction == 1.0
    stats = region_stats(anomaly_map, 0.51, (4, 4))
    assert stats.anomalous_area_fraction == 0.0 and not stats.has_region
    assert stats.bbox_x0 is None and stats.bbox_y1 is None
    assert stats.max_pixel_score == 0.5


def test_invalid_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        region_stats(np.zeros(4), 0.5, (4, 4))
    with pytest.raises(ValueError):
        region_stats(np.zeros((4, 4)), 0.5, (0, 4))
