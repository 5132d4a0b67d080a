"""Binary-classification curves from cumulative counts, shared by exact and streaming metrics.

Every ranking metric here is a function of the counts ``tps[i]`` / ``fps[i]`` of positives and
negatives scored at or above the ``i``-th threshold, thresholds in decreasing order. The exact
path (:mod:`vip2clip.eval.metrics`) gets them by sorting the scores; the streaming path
(:mod:`vip2clip.eval.histogram`) gets them from a histogram. Both then use these functions, so
the two paths cannot disagree on definitions.

Definitions follow scikit-learn (which the AnomalyCLIP / ViP²-CLIP research code calls):

* AUROC: trapezoidal area under (FPR, TPR) with the point (0, 0) prepended; ties count one half.
* AP: ``sum_i (R_i - R_{i-1}) P_i`` (step-wise, no interpolation), ``R_0 = 0``.
* F1-max: the largest ``2 P R / (P + R)`` over all thresholds, with the threshold reaching it
  (predict "anomalous" when ``score >= threshold``).

Undefined values are ``NaN``: AUROC needs both classes; AP and F1-max need at least one positive.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class CurveCounts:
    """Cumulative counts at decreasing thresholds: ``tps[i]`` positives score >= ``thresholds[i]``.

    Arrays have equal length ``K``; ``tps`` and ``fps`` are non-decreasing. Counts may be
    fractional (weighted samples).
    """

    tps: FloatArray
    fps: FloatArray
    thresholds: FloatArray

    @property
    def positives(self) -> float:
        """Total number of positives."""
        return float(self.tps[-1]) if self.tps.size else 0.0

    @property
    def negatives(self) -> float:
        """Total number of negatives."""
        return float(self.fps[-1]) if self.fps.size else 0.0


@dataclass(frozen=True)
class F1Max:
    """Best F1 over thresholds and the threshold reaching it (``NaN`` when undefined)."""

    f1: float
    threshold: float


def auroc_from_counts(counts: CurveCounts) -> float:
    """Area under the ROC curve; ``NaN`` when positives or negatives are missing."""
    pos, neg = counts.positives, counts.negatives
    if pos <= 0 or neg <= 0:
        return math.nan
    tpr = np.concatenate(([0.0], counts.tps / pos))
    fpr = np.concatenate(([0.0], counts.fps / neg))
    return float(np.trapezoid(tpr, fpr))


def average_precision_from_counts(counts: CurveCounts) -> float:
    """Step-wise average precision; ``NaN`` without positives."""
    pos = counts.positives
    if pos <= 0:
        return math.nan
    predicted = counts.tps + counts.fps
    precision = np.divide(counts.tps, predicted, out=np.ones_like(counts.tps), where=predicted > 0)
    recall = counts.tps / pos
    recall_step = np.diff(np.concatenate(([0.0], recall)))
    return float(np.sum(recall_step * precision))


def f1_max_from_counts(counts: CurveCounts) -> F1Max:
    """Best F1 and its threshold; ``NaN`` without positives.

    ``F1 = 2 TP / (2 TP + FP + FN)``, which equals ``2 P R / (P + R)`` and is 0 (not NaN) where
    nothing is predicted positive.
    """
    pos = counts.positives
    if pos <= 0:
        return F1Max(math.nan, math.nan)
    f1 = 2.0 * counts.tps / (counts.tps + counts.fps + pos)
    best = int(np.argmax(f1))
    return F1Max(float(f1[best]), float(counts.thresholds[best]))
