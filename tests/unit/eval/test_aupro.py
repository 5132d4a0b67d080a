"""AUPRO: hand-computed cases, a loop-based research reference, degenerate input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from vip2clip.eval.aupro import aupro, region_pixel_weights, research_thresholds

TOL = 1e-6


def _two_region_case() -> tuple[np.ndarray, np.ndarray]:
    """4x4: diagonal region {(0,0): 1.0, (1,1): 0.5}, region {(3,3): 0.5}, one normal 0.5."""
    mask = np.zeros((1, 4, 4), dtype=np.uint8)
    score = np.zeros((1, 4, 4), dtype=np.float64)
    mask[0, 0, 0] = mask[0, 1, 1] = mask[0, 3, 3] = 1
    score[0, 0, 0], score[0, 1, 1], score[0, 3, 3] = 1.0, 0.5, 0.5
    score[0, 0, 3] = 0.5  # the one false positive below threshold 0.5
    return mask, score


def _reference_research_aupro(masks: np.ndarray, maps: np.ndarray) -> float:
    """Plain re-statement of the research definition: loops over thresholds and regions."""
    fprs, pros = [], []
    normal = masks == 0
    for th in research_thresholds(float(maps.min()), float(maps.max())):
        predicted = maps > th
        overlaps = []
        for mask, pred in zip(masks, predicted, strict=True):
            labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
            overlaps += [pred[labels == r].mean() for r in range(1, n + 1)]
        pros.append(np.mean(overlaps))
        fprs.append(np.logical_and(predicted, normal).sum() / normal.sum())
    fpr, pro = np.array(fprs), np.array(pros)
    keep = fpr < 0.3
    fpr, pro = fpr[keep], pro[keep]
    fpr = (fpr - fpr.min()) / (fpr.max() - fpr.min())
    order = np.argsort(fpr, kind="stable")
    return float(np.trapezoid(pro[order], fpr[order]))


def test_research_hand_computed() -> None:
    masks, maps = _two_region_case()
    # t < 0.5: FPR 1/13, PRO (2/2 + 1/1)/2 = 1; t >= 0.5: FPR 0, PRO (1/2 + 0)/2 = 0.25.
    # Rescaled FPR {0, 1}: area (0.25 + 1) / 2.
    assert aupro(masks, maps) == pytest.approx(0.625, abs=TOL)


def test_anomalib_hand_computed() -> None:
    masks, maps = _two_region_case()
    # curve from the origin: (0, 0.25) -> (1/13, 1) -> (0.3, 1); area / 0.3
    area = (0.25 + 1.0) / 2 / 13 + (0.3 - 1 / 13) * 1.0
    assert aupro(masks, maps, method="anomalib") == pytest.approx(area / 0.3, abs=TOL)


def test_regions_use_eight_connectivity() -> None:
    mask = np.zeros((4, 4), dtype=bool)
    mask[0, 0] = mask[1, 1] = True  # diagonal neighbours: one region
    weights, n_regions = region_pixel_weights(mask)
    assert n_regions == 1
    np.testing.assert_allclose(weights, [0.5, 0.5])


@pytest.mark.parametrize("seed", range(3))
def test_research_matches_reference_loop(seed: int) -> None:
    rng = np.random.default_rng(seed)
    masks = np.zeros((3, 24, 24), dtype=np.uint8)
    for m in masks[:2]:
        for _ in range(3):
            y, x = rng.integers(0, 20, size=2)
            m[y : y + rng.integers(1, 5), x : x + rng.integers(1, 5)] = 1
    maps = np.clip(rng.normal(0.3 + 0.3 * masks, 0.15), 0, 1)
    assert aupro(masks, maps) == pytest.approx(_reference_research_aupro(masks, maps), abs=TOL)


def test_perfect_separation_scores_one() -> None:
    masks, _ = _two_region_case()
    maps = masks.astype(np.float64) * 0.5 + 0.25
    assert aupro(masks, maps, method="anomalib") == pytest.approx(1.0)


def test_degenerate_cases_are_nan() -> None:
    masks, maps = _two_region_case()
    assert math.isnan(aupro(np.zeros_like(masks), maps))  # empty masks: no region
    assert math.isnan(aupro(np.ones_like(masks), maps))  # no normal pixel
    assert math.isnan(aupro(masks, np.full(maps.shape, 0.5)))  # constant maps


def test_rejects_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="must be equal"):
        aupro(np.zeros((1, 4, 4)), np.zeros((1, 4, 5)))
