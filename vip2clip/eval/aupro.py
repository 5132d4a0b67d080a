"""AUPRO: area under the per-region-overlap curve, up to a false-positive-rate limit.

Ground-truth regions are the connected components of each mask, with 8-connectivity
(``scipy.ndimage.label`` with a 3x3 structure), which is what ``skimage.measure.label`` — used
by the AnomalyCLIP / ViP²-CLIP research code — does by default for 2-D masks. At a threshold
``t`` a pixel is predicted anomalous when ``score > t``; PRO(t) is the mean over all regions
of a class of the fraction of the region predicted anomalous, FPR(t) the fraction of normal
pixels (mask 0) predicted anomalous.

Two integrations are offered (``AuproMethod``):

* ``"research"`` (default, what the research code's ``cal_pro_score`` computes and the paper
  reports): 200 thresholds ``np.arange(min, max, (max - min) / 200)`` over the class's scores,
  keep the points with FPR < 0.3, rescale those FPRs min–max to [0, 1], trapezoidal area.
  The rescaling divides by (largest kept FPR - smallest kept FPR), close to 0.3 when the grid is
  fine, not exactly 0.3.
* ``"anomalib"``: the curve at every distinct threshold (plus the origin), PRO interpolated
  linearly at FPR = 0.3, trapezoidal area over [0, 0.3] divided by 0.3 — anomalib's ``AUPRO``
  (and the MVTec AD evaluation script) definition.

Both return ``NaN`` when undefined: no anomalous region, no normal pixel, constant scores
(research method: zero threshold step), or fewer than two curve points below the limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import ndimage

FloatArray = npt.NDArray[np.float64]
AuproMethod = Literal["research", "anomalib"]

# cal_pro_score in AnomalyCLIP / ViP²-CLIP metrics.py: max_step=200, expect_fpr=0.3.
RESEARCH_STEPS = 200
FPR_LIMIT = 0.3
# skimage.measure.label default for 2-D input: full (8-) connectivity.
CONNECTIVITY_8 = np.ones((3, 3), dtype=bool)


@dataclass(frozen=True)
class ProCurve:
    """PRO and FPR at increasing thresholds (``score > threshold`` is predicted anomalous)."""

    thresholds: FloatArray
    fpr: FloatArray
    pro: FloatArray


def region_pixel_weights(mask: npt.NDArray[np.bool_]) -> tuple[FloatArray, int]:
    """Weights ``1 / area`` of each anomalous pixel's region, in ``mask[mask]`` order.

    ``mask`` is one (H, W) boolean ground truth; returns (weights (P,), number of regions).
    Summing the weights of a region's pixels predicted anomalous gives its overlap fraction.
    """
    labels, n_regions = ndimage.label(mask, structure=CONNECTIVITY_8)
    if n_regions == 0:
        return np.zeros(0, dtype=np.float64), 0
    pixel_labels = labels[mask]
    areas = np.bincount(pixel_labels, minlength=n_regions + 1).astype(np.float64)
    return 1.0 / areas[pixel_labels], int(n_regions)


def research_thresholds(
    min_score: float, max_score: float, steps: int = RESEARCH_STEPS
) -> FloatArray:
    """The research code's threshold grid ``np.arange(min, max, (max - min) / steps)``.

    Empty when the scores are constant (the research code would divide by zero there).
    """
    delta = (max_score - min_score) / steps
    if not delta > 0:
        return np.zeros(0, dtype=np.float64)
    return np.arange(min_score, max_score, delta, dtype=np.float64)


def aupro_from_curve(curve: ProCurve, method: AuproMethod, fpr_limit: float = FPR_LIMIT) -> float:
    """Integrate a PRO curve with the research or anomalib convention (module docstring)."""
    if (
        curve.fpr.size == 0
        or not np.all(np.isfinite(curve.fpr))
        or not np.all(np.isfinite(curve.pro))
    ):
        return math.nan
    if method == "research":
        return _research_area(curve, fpr_limit)
    return _limited_area(curve, fpr_limit)


def _research_area(curve: ProCurve, fpr_limit: float) -> float:
    keep = curve.fpr < fpr_limit
    fpr, pro = curve.fpr[keep], curve.pro[keep]
    span = fpr.max() - fpr.min() if fpr.size else 0.0
    if fpr.size < 2 or span <= 0:
        return math.nan
    scaled = (fpr - fpr.min()) / span
    order = np.argsort(scaled, kind="stable")
    return float(np.trapezoid(pro[order], scaled[order]))


def _limited_area(curve: ProCurve, fpr_limit: float) -> float:
    # thresholds increase, so FPR and PRO decrease: reverse to walk the curve from the origin
    fpr = np.concatenate(([0.0], curve.fpr[::-1]))
    pro = np.concatenate(([0.0], curve.pro[::-1]))
    fpr = np.maximum.accumulate(fpr)
    inside = fpr <= fpr_limit
    if not np.any(~inside):
        return math.nan  # the curve never reaches the limit
    pro_at_limit = float(np.interp(fpr_limit, fpr, pro))
    fpr_cut = np.concatenate((fpr[inside], [fpr_limit]))
    pro_cut = np.concatenate((pro[inside], [pro_at_limit]))
    return float(np.trapezoid(pro_cut, fpr_cut) / fpr_limit)


def exact_pro_curve(
    masks: npt.ArrayLike, maps: npt.ArrayLike, method: AuproMethod, steps: int = RESEARCH_STEPS
) -> ProCurve:
    """PRO curve of a few maps, exactly (sorts every pixel; for small inputs and tests).

    ``masks`` (N, H, W) {0, 1}, ``maps`` (N, H, W) real.
    """
    mask_arr = np.asarray(masks).astype(bool)
    map_arr = np.asarray(maps, dtype=np.float64)
    if mask_arr.shape != map_arr.shape or mask_arr.ndim != 3:
        raise ValueError(f"masks {mask_arr.shape} and maps {map_arr.shape} must be equal (N, H, W)")
    weights, n_regions = _all_region_weights(mask_arr)
    normal = np.sort(map_arr[~mask_arr])
    anomalous = map_arr[mask_arr]
    order = np.argsort(anomalous, kind="stable")
    anomalous, weights = anomalous[order], weights[order]
    if method == "research":
        thresholds = research_thresholds(float(map_arr.min()), float(map_arr.max()), steps)
    else:
        thresholds = np.concatenate(([-np.inf], np.unique(map_arr)))
    fp = normal.size - np.searchsorted(normal, thresholds, side="right")
    above = np.searchsorted(anomalous, thresholds, side="right")
    weight_above = np.concatenate((np.cumsum(weights[::-1])[::-1], [0.0]))[above]
    return _curve(thresholds, fp.astype(np.float64), normal.size, weight_above, n_regions)


def aupro(
    masks: npt.ArrayLike,
    maps: npt.ArrayLike,
    method: AuproMethod = "research",
    fpr_limit: float = FPR_LIMIT,
    steps: int = RESEARCH_STEPS,
) -> float:
    """Exact AUPRO of (N, H, W) masks and maps (module docstring for the two methods)."""
    return aupro_from_curve(exact_pro_curve(masks, maps, method, steps), method, fpr_limit)


def _all_region_weights(masks: npt.NDArray[np.bool_]) -> tuple[FloatArray, int]:
    parts, total = [], 0
    for mask in masks:
        weights, n_regions = region_pixel_weights(mask)
        parts.append(weights)
        total += n_regions
    return (np.concatenate(parts) if parts else np.zeros(0)), total


def _curve(
    thresholds: FloatArray,
    fp: FloatArray,
    n_normal: float,
    weight_above: FloatArray,
    n_regions: int,
) -> ProCurve:
    """Build the curve, or an empty one when FPR or PRO is undefined."""
    if n_normal <= 0 or n_regions <= 0:
        empty = np.zeros(0, dtype=np.float64)
        return ProCurve(empty, empty, empty)
    return ProCurve(thresholds, fp / n_normal, weight_above / n_regions)
