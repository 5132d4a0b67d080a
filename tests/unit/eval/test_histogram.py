"""Streaming histogram metrics against the exact ones."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vip2clip.eval.aupro import aupro
from vip2clip.eval.histogram import PixelAccumulator
from vip2clip.eval.metrics import auroc, average_precision, f1_max

TOL = 1e-6
BINS = 2**12


def _maps_and_masks(seed: int, on_grid: bool) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    masks = np.zeros((4, 32, 32), dtype=np.uint8)
    for m in masks[:3]:
        y, x = rng.integers(0, 24, size=2)
        m[y : y + rng.integers(2, 8), x : x + rng.integers(2, 8)] = 1
    maps = np.clip(rng.normal(0.35 + 0.25 * masks, 0.12), 0, 1).astype(np.float32)
    if on_grid:  # scores already at bin lower edges: quantisation is lossless
        maps = (np.floor(maps * BINS) / BINS).astype(np.float32)
    return maps, masks


@pytest.mark.parametrize("seed", range(3))
def test_equals_exact_metrics_when_scores_are_on_the_grid(seed: int) -> None:
    maps, masks = _maps_and_masks(seed, on_grid=True)
    acc = PixelAccumulator(BINS)
    acc.update(maps[:2], masks[:2])  # two batches
    acc.update(maps[2:], masks[2:])
    assert acc.auroc() == pytest.approx(auroc(masks, maps), abs=TOL)
    assert acc.average_precision() == pytest.approx(average_precision(masks, maps), abs=TOL)
    exact_f1 = f1_max(masks, maps)
    assert acc.f1_max().f1 == pytest.approx(exact_f1.f1, abs=TOL)
    assert acc.f1_max().threshold == pytest.approx(exact_f1.threshold, abs=TOL)
    assert acc.aupro("anomalib") == pytest.approx(aupro(masks, maps, "anomalib"), abs=TOL)
    assert acc.aupro("research") == pytest.approx(aupro(masks, maps, "research"), abs=TOL)


def test_research_aupro_close_to_exact() -> None:
    maps, masks = _maps_and_masks(7, on_grid=False)
    acc = PixelAccumulator(2**18)
    acc.update(maps, masks)
    assert acc.aupro("research") == pytest.approx(aupro(masks, maps, "research"), abs=1e-3)


def test_off_grid_error_within_reported_bound() -> None:
    maps, masks = _maps_and_masks(3, on_grid=False)
    acc = PixelAccumulator(BINS)
    acc.update(maps, masks)
    bound = acc.auroc_error_bound()
    assert 0 < bound < 1e-2
    assert abs(acc.auroc() - auroc(masks, maps)) <= bound
    assert abs(acc.average_precision() - average_precision(masks, maps)) < 1e-3
    assert abs(acc.f1_max().f1 - f1_max(masks, maps).f1) < 1e-3


def test_merge_equals_one_accumulator() -> None:
    maps, masks = _maps_and_masks(1, on_grid=False)
    whole, left, right = PixelAccumulator(BINS), PixelAccumulator(BINS), PixelAccumulator(BINS)
    whole.update(maps, masks)
    left.update(maps[:1], masks[:1])
    right.update(maps[1:], masks[1:])
    left.merge(right)
    np.testing.assert_array_equal(left.normal, whole.normal)
    np.testing.assert_allclose(left.region_weight, whole.region_weight)
    assert left.n_regions == whole.n_regions == 3
    assert left.aupro() == pytest.approx(whole.aupro())


def test_all_normal_maps_are_undefined() -> None:
    acc = PixelAccumulator(BINS)
    acc.update(np.full((2, 8, 8), 0.3), np.zeros((2, 8, 8)))
    assert math.isnan(acc.auroc())
    assert math.isnan(acc.f1_max().f1)
    assert math.isnan(acc.aupro())
    assert math.isnan(acc.auroc_error_bound())


def test_rejects_out_of_range_scores_and_bad_shapes() -> None:
    acc = PixelAccumulator(BINS)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        acc.update(np.full((1, 4, 4), 1.5), np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="must be equal"):
        acc.update(np.zeros((1, 4, 4)), np.zeros((1, 4, 5)))
    with pytest.raises(ValueError, match="cannot merge"):
        acc.merge(PixelAccumulator(8))
