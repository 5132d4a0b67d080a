"""Streaming pixel metrics: fixed-bin histograms instead of every pixel score.

A :class:`PixelAccumulator` takes anomaly maps and ground-truth masks batch by batch and keeps
three histograms over ``bins`` equal bins of ``[0, 1]`` (the range of ViP²-CLIP anomaly maps):
normal-pixel counts, anomalous-pixel counts, and anomalous pixels weighted by ``1 / area`` of
their ground-truth region (for AUPRO). Memory is ``3 * bins * 8`` bytes per accumulator
(6 MiB at the default 2**18 bins) plus one batch, whatever the number of maps.

Approximation: every score is replaced by its bin index ``floor(score * bins)``; with a
power-of-two ``bins`` this is exact arithmetic on float32 maps. Metrics are then exact for the
quantised scores, and every curve point (TP/FP counts at ``score >= k / bins``) is an exact point
of the full-precision curve: only the points inside a bin are missing, i.e. pixels within one
bin become ties:

* AUROC moves by at most ``0.5 * sum_b pos_b * neg_b / (P * N)`` — returned by
  :meth:`PixelAccumulator.auroc_error_bound` (typically ~1e-6 at 2**18 bins);
* AP and F1-max are evaluated at bin edges; thresholds are multiples of ``1 / bins``;
* AUPRO (research grid): a pixel in the same bin as a threshold counts as below it.

Scores outside ``[0, 1]`` by more than :data:`RANGE_TOLERANCE` are rejected, not clipped.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from vip2clip.eval.aupro import (
    FPR_LIMIT,
    RESEARCH_STEPS,
    AuproMethod,
    ProCurve,
    aupro_from_curve,
    region_pixel_weights,
    research_thresholds,
)
from vip2clip.eval.curves import (
    CurveCounts,
    F1Max,
    auroc_from_counts,
    average_precision_from_counts,
    f1_max_from_counts,
)

DEFAULT_BINS = 2**18
# float32 maps of values in [0, 1] may overshoot by a few ulps after smoothing.
RANGE_TOLERANCE = 1e-5

FloatArray = npt.NDArray[np.float64]


class PixelAccumulator:
    """Histogram accumulator of pixel scores for AUROC, AP, F1-max and AUPRO.

    >>> acc = PixelAccumulator(bins=4)
    >>> acc.update(np.array([[[0.1, 0.9]]]), np.array([[[0, 1]]]))
    >>> acc.auroc()
    1.0
    """

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        if bins < 2:
            raise ValueError(f"bins must be at least 2, got {bins}")
        self.bins = bins
        self.normal = np.zeros(bins, dtype=np.int64)
        self.anomalous = np.zeros(bins, dtype=np.int64)
        self.region_weight = np.zeros(bins, dtype=np.float64)
        self.n_regions = 0
        self.n_maps = 0
        self.min_score = math.inf
        self.max_score = -math.inf

    def update(self, maps: npt.ArrayLike, masks: npt.ArrayLike) -> None:
        """Add (B, H, W) anomaly maps in [0, 1] and their (B, H, W) {0, 1} masks."""
        map_arr = np.asarray(maps)
        mask_arr = np.asarray(masks).astype(bool, copy=False)
        if map_arr.ndim == 2:
            map_arr, mask_arr = map_arr[None], mask_arr[None]
        if map_arr.shape != mask_arr.shape or map_arr.ndim != 3:
            raise ValueError(
                f"maps {map_arr.shape} and masks {mask_arr.shape} must be equal (B, H, W)"
            )
        for anomaly_map, mask in zip(map_arr, mask_arr, strict=True):
            self._add_one(anomaly_map, mask)

    def _add_one(self, anomaly_map: npt.NDArray, mask: npt.NDArray[np.bool_]) -> None:
        low, high = float(anomaly_map.min()), float(anomaly_map.max())
        if low < -RANGE_TOLERANCE or high > 1.0 + RANGE_TOLERANCE or not math.isfinite(low + high):
            raise ValueError(f"anomaly map values must lie in [0, 1], got [{low}, {high}]")
        self.min_score, self.max_score = min(self.min_score, low), max(self.max_score, high)
        index = self._quantise(anomaly_map)
        self.normal += np.bincount(index[~mask], minlength=self.bins)
        weights, n_regions = region_pixel_weights(mask)
        if n_regions:
            anomalous_index = index[mask]
            self.anomalous += np.bincount(anomalous_index, minlength=self.bins)
            self.region_weight += np.bincount(anomalous_index, weights=weights, minlength=self.bins)
            self.n_regions += n_regions
        self.n_maps += 1

    def _quantise(self, values: npt.NDArray) -> npt.NDArray[np.intp]:
        scaled = values.astype(np.float32, copy=False) * np.float32(self.bins)
        return np.clip(scaled, 0, self.bins - 1).astype(np.intp)

    def merge(self, other: PixelAccumulator) -> None:
        """Add another accumulator's counts (same ``bins``) into this one."""
        if other.bins != self.bins:
            raise ValueError(f"cannot merge {other.bins} bins into {self.bins}")
        self.normal += other.normal
        self.anomalous += other.anomalous
        self.region_weight += other.region_weight
        self.n_regions += other.n_regions
        self.n_maps += other.n_maps
        self.min_score = min(self.min_score, other.min_score)
        self.max_score = max(self.max_score, other.max_score)

    def counts(self) -> CurveCounts:
        """Cumulative counts at bin lower edges, highest first (``score >= edge``)."""
        tps = np.cumsum(self.anomalous[::-1], dtype=np.float64)
        fps = np.cumsum(self.normal[::-1], dtype=np.float64)
        edges = np.arange(self.bins - 1, -1, -1, dtype=np.float64) / self.bins
        return CurveCounts(tps=tps, fps=fps, thresholds=edges)

    def auroc(self) -> float:
        """Pixel AUROC of the quantised scores; ``NaN`` without both classes."""
        return auroc_from_counts(self.counts())

    def average_precision(self) -> float:
        """Pixel AP of the quantised scores; ``NaN`` without anomalous pixels."""
        return average_precision_from_counts(self.counts())

    def f1_max(self) -> F1Max:
        """Pixel F1-max and its threshold (a bin edge); ``NaN`` without anomalous pixels."""
        return f1_max_from_counts(self.counts())

    def auroc_error_bound(self) -> float:
        """Largest possible |AUROC(quantised) - AUROC(exact)|: half the within-bin pair share."""
        pos, neg = float(self.anomalous.sum()), float(self.normal.sum())
        if pos <= 0 or neg <= 0:
            return math.nan
        tied = float(np.dot(self.anomalous.astype(np.float64), self.normal.astype(np.float64)))
        return 0.5 * tied / (pos * neg)

    def pro_curve(self, method: AuproMethod, steps: int = RESEARCH_STEPS) -> ProCurve:
        """PRO curve from the histograms (``score > threshold`` predicted anomalous)."""
        n_normal = float(self.normal.sum())
        if n_normal <= 0 or self.n_regions <= 0:
            empty = np.zeros(0, dtype=np.float64)
            return ProCurve(empty, empty, empty)
        # above[k] = mass in bins > k; above[-1] (k = -1) = everything
        fp_above = _mass_above(self.normal.astype(np.float64))
        weight_above = _mass_above(self.region_weight)
        if method == "research":
            thresholds = research_thresholds(self.min_score, self.max_score, steps)
            index = np.clip(np.floor(thresholds * self.bins), -1, self.bins - 1).astype(np.intp)
        else:
            index = np.arange(-1, self.bins, dtype=np.intp)
            thresholds = (index + 1).astype(np.float64) / self.bins
        return ProCurve(
            thresholds, fp_above[index + 1] / n_normal, weight_above[index + 1] / self.n_regions
        )

    def aupro(
        self,
        method: AuproMethod = "research",
        fpr_limit: float = FPR_LIMIT,
        steps: int = RESEARCH_STEPS,
    ) -> float:
        """AUPRO of the accumulated maps (see :mod:`vip2clip.eval.aupro`)."""
        return aupro_from_curve(self.pro_curve(method, steps), method, fpr_limit)


def _mass_above(hist: FloatArray) -> FloatArray:
    """``out[k + 1]`` = total of bins strictly above ``k`` for k = -1 .. bins-1 (length bins+1)."""
    return np.concatenate((np.cumsum(hist[::-1])[::-1], [0.0]))
