"""Exact ranking metrics for small inputs (image scores, or pixels of a few maps).

These sort every score, so memory grows with the input; for full pixel sets use the streaming
:class:`vip2clip.eval.histogram.PixelAccumulator`. Both share the definitions of
:mod:`vip2clip.eval.curves` and agree with scikit-learn's ``roc_auc_score``,
``average_precision_score`` and ``precision_recall_curve``-based F1-max to floating point.

>>> round(auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 6)
0.75
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from vip2clip.eval.curves import (
    CurveCounts,
    F1Max,
    auroc_from_counts,
    average_precision_from_counts,
    f1_max_from_counts,
)

ArrayLike = npt.ArrayLike


def curve_counts(labels: ArrayLike, scores: ArrayLike) -> CurveCounts:
    """Cumulative positive / negative counts at each distinct score, highest first.

    ``labels`` are {0, 1} (or bool) and ``scores`` real, any equal shapes (flattened).
    """
    y = np.asarray(labels).ravel().astype(bool)
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels has {y.size} elements but scores has {s.size}")
    if not np.all(np.isfinite(s)):
        raise ValueError("scores contain NaN or infinite values")
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # last index of each run of equal scores: counts there include every tied sample
    last_of_run = np.flatnonzero(np.diff(s_sorted, append=-np.inf) != 0)
    tps = np.cumsum(y_sorted, dtype=np.float64)[last_of_run]
    fps = (last_of_run + 1).astype(np.float64) - tps
    return CurveCounts(tps=tps, fps=fps, thresholds=s_sorted[last_of_run])


def auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve; ``NaN`` when only one class is present."""
    return auroc_from_counts(curve_counts(labels, scores))


def average_precision(labels: ArrayLike, scores: ArrayLike) -> float:
    """Average precision (scikit-learn's step-wise definition); ``NaN`` without positives."""
    return average_precision_from_counts(curve_counts(labels, scores))


def f1_max(labels: ArrayLike, scores: ArrayLike) -> F1Max:
    """Best F1 over thresholds and the threshold reaching it; ``NaN`` without positives."""
    return f1_max_from_counts(curve_counts(labels, scores))
