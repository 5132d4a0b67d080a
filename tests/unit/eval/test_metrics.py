"""Exact image-level metrics against scikit-learn and hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from vip2clip.eval.metrics import auroc, average_precision, curve_counts, f1_max

TOL = 1e-6


def _sklearn_f1_max(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """F1-max as the research code computes it (precision_recall_curve, max finite F1)."""
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = 2 * precision * recall / (precision + recall)
    f1 = np.where(np.isfinite(f1), f1, -1.0)[:-1]
    best = int(np.argmax(f1))
    return float(f1[best]), float(thresholds[best])


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("decimals", [None, 1])
def test_matches_sklearn_on_random_data(seed: int, decimals: int | None) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    labels = (rng.random(n) < rng.uniform(0.1, 0.9)).astype(int)
    labels[:2] = [0, 1]
    scores = rng.normal(labels * rng.uniform(0, 2), 1.0)
    if decimals is not None:  # many ties
        scores = np.round(scores, decimals)
    assert auroc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=TOL)
    assert average_precision(labels, scores) == pytest.approx(
        average_precision_score(labels, scores), abs=TOL
    )
    expected_f1, expected_threshold = _sklearn_f1_max(labels, scores)
    got = f1_max(labels, scores)
    assert got.f1 == pytest.approx(expected_f1, abs=TOL)
    if decimals is None:  # continuous scores: a unique best threshold
        assert got.threshold == pytest.approx(expected_threshold, abs=TOL)


def test_hand_computed_case() -> None:
    labels = [0, 0, 1, 1]
    scores = [0.1, 0.4, 0.35, 0.8]
    # pairs (pos, neg): (0.35>0.1) (0.35<0.4) (0.8>0.1) (0.8>0.4) -> 3/4
    assert auroc(labels, scores) == pytest.approx(0.75)
    # ranking 0.8(+) 0.4(-) 0.35(+) 0.1(-): AP = 0.5*1 + 0.5*(2/3)
    assert average_precision(labels, scores) == pytest.approx(0.5 + 1 / 3)
    # threshold 0.35: TP 2, FP 1, FN 0 -> F1 = 4/5 (threshold 0.8 gives 2/3)
    best = f1_max(labels, scores)
    assert best.f1 == pytest.approx(0.8)
    assert best.threshold == pytest.approx(0.35)


def test_perfect_and_inverted_rankings() -> None:
    labels = [0, 0, 1, 1]
    assert auroc(labels, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert auroc(labels, [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert average_precision(labels, [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert f1_max(labels, [0.1, 0.2, 0.8, 0.9]).f1 == 1.0


def test_all_normal_class_is_undefined() -> None:
    labels, scores = [0, 0, 0], [0.1, 0.5, 0.9]
    assert math.isnan(auroc(labels, scores))
    assert math.isnan(average_precision(labels, scores))
    best = f1_max(labels, scores)
    assert math.isnan(best.f1) and math.isnan(best.threshold)


def test_all_anomalous_class() -> None:
    labels, scores = [1, 1], [0.2, 0.3]
    assert math.isnan(auroc(labels, scores))
    assert average_precision(labels, scores) == 1.0
    assert f1_max(labels, scores) == f1_max([1, 1], [0.2, 0.3])
    assert f1_max(labels, scores).f1 == 1.0


def test_constant_scores() -> None:
    labels = np.array([0, 0, 0, 1])
    scores = np.full(4, 0.5)
    assert auroc(labels, scores) == 0.5
    assert average_precision(labels, scores) == pytest.approx(0.25)
    best = f1_max(labels, scores)
    # everything predicted anomalous: TP 1, FP 3 -> F1 = 2 / 5
    assert best.f1 == pytest.approx(0.4)
    assert best.threshold == 0.5


def test_empty_input_is_undefined() -> None:
    assert math.isnan(auroc([], []))
    assert math.isnan(f1_max([], []).f1)


def test_curve_counts_groups_ties() -> None:
    counts = curve_counts([1, 0, 1, 0], [0.5, 0.5, 0.9, 0.1])
    np.testing.assert_array_equal(counts.thresholds, [0.9, 0.5, 0.1])
    np.testing.assert_array_equal(counts.tps, [1, 2, 2])
    np.testing.assert_array_equal(counts.fps, [0, 1, 2])


def test_rejects_mismatched_or_non_finite_input() -> None:
    with pytest.raises(ValueError, match="elements"):
        auroc([0, 1], [0.5])
    with pytest.raises(ValueError, match="NaN"):
        auroc([0, 1], [0.5, math.nan])
