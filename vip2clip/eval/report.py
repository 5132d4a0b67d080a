"""Per-class evaluation: accumulate scored batches, then compute the paper-style metrics.

:class:`EvaluationAccumulator` takes batches of (class name, label, image score, anomaly map,
mask) in any order — class by class or interleaved — keeping every image score (small) and one
streaming :class:`~vip2clip.eval.histogram.PixelAccumulator` per class for the pixels. The
:class:`EvaluationReport` has one :class:`ClassMetrics` row per class, their mean (ignoring
undefined values, which are ``NaN``) and the F1-max decision thresholds pooled over all classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np
import numpy.typing as npt

from vip2clip.eval.aupro import AuproMethod
from vip2clip.eval.histogram import DEFAULT_BINS, PixelAccumulator
from vip2clip.eval.metrics import auroc, average_precision, f1_max

MEAN_ROW = "mean"


@dataclass(frozen=True)
class ClassMetrics:
    """Metrics of one class (or the mean row); values are fractions in [0, 1], ``NaN`` undefined."""

    class_name: str
    n_images: int
    n_anomalous: int
    image_auroc: float
    image_ap: float
    image_f1_max: float
    pixel_auroc: float
    pixel_ap: float
    pixel_aupro: float
    pixel_f1_max: float


METRIC_NAMES: tuple[str, ...] = tuple(
    f.name for f in fields(ClassMetrics) if f.name not in {"class_name", "n_images", "n_anomalous"}
)


@dataclass(frozen=True)
class Thresholds:
    """F1-max decision thresholds pooled over every class of a run (``NaN`` when undefined)."""

    image: float
    pixel: float
    image_f1: float
    pixel_f1: float


@dataclass(frozen=True)
class EvaluationReport:
    """Per-class rows, their mean, pooled thresholds and how the pixel metrics were computed."""

    rows: tuple[ClassMetrics, ...]
    mean: ClassMetrics
    thresholds: Thresholds
    aupro_method: AuproMethod
    histogram_bins: int
    pixel_auroc_error_bound: float
    notes: tuple[str, ...] = field(default_factory=tuple)


@dataclass
class _ClassState:
    labels: list[npt.NDArray[np.int64]] = field(default_factory=list)
    scores: list[npt.NDArray[np.float64]] = field(default_factory=list)
    pixels: PixelAccumulator | None = None


class EvaluationAccumulator:
    """Collects scored batches class by class; :meth:`report` computes every metric.

    ``pixel_metrics=False`` skips maps and masks (image-level evaluation only).
    """

    def __init__(
        self,
        bins: int = DEFAULT_BINS,
        aupro_method: AuproMethod = "research",
        pixel_metrics: bool = True,
    ) -> None:
        self.bins = bins
        self.aupro_method: AuproMethod = aupro_method
        self.pixel_metrics = pixel_metrics
        self._classes: dict[str, _ClassState] = {}

    def add(
        self,
        class_names: Sequence[str],
        labels: npt.ArrayLike,
        scores: npt.ArrayLike,
        maps: npt.ArrayLike | None = None,
        masks: npt.ArrayLike | None = None,
    ) -> None:
        """Add a batch: B class names, (B,) labels {0, 1}, (B,) scores, (B, H, W) maps and masks."""
        label_arr = np.asarray(labels, dtype=np.int64).reshape(-1)
        score_arr = np.asarray(scores, dtype=np.float64).reshape(-1)
        if not len(class_names) == label_arr.size == score_arr.size:
            raise ValueError("class_names, labels and scores must have one entry per image")
        map_arr, mask_arr = self._pixel_arrays(maps, masks, len(class_names))
        for name in sorted(set(class_names)):
            rows = np.array([i for i, n in enumerate(class_names) if n == name])
            state = self._classes.setdefault(name, _ClassState())
            state.labels.append(label_arr[rows])
            state.scores.append(score_arr[rows])
            if map_arr is not None and mask_arr is not None:
                if state.pixels is None:
                    state.pixels = PixelAccumulator(self.bins)
                state.pixels.update(map_arr[rows], mask_arr[rows])

    def _pixel_arrays(
        self, maps: npt.ArrayLike | None, masks: npt.ArrayLike | None, batch: int
    ) -> tuple[npt.NDArray | None, npt.NDArray | None]:
        if not self.pixel_metrics:
            return None, None
        if maps is None or masks is None:
            raise ValueError("pixel metrics need maps and masks (or pixel_metrics=False)")
        map_arr, mask_arr = np.asarray(maps), np.asarray(masks)
        if map_arr.shape[:1] != (batch,) or mask_arr.shape != map_arr.shape:
            raise ValueError(
                f"maps {map_arr.shape} / masks {mask_arr.shape} do not match {batch} images"
            )
        return map_arr, mask_arr

    @property
    def class_names(self) -> tuple[str, ...]:
        """Classes seen so far, sorted."""
        return tuple(sorted(self._classes))

    def report(self) -> EvaluationReport:
        """Compute per-class metrics, the mean row and the pooled F1-max thresholds."""
        if not self._classes:
            raise ValueError("no scored images to evaluate")
        rows = tuple(self._class_metrics(name, self._classes[name]) for name in self.class_names)
        pooled = self._pooled_pixels()
        return EvaluationReport(
            rows=rows,
            mean=_mean_row(rows),
            thresholds=self._thresholds(pooled),
            aupro_method=self.aupro_method,
            histogram_bins=self.bins,
            pixel_auroc_error_bound=pooled.auroc_error_bound() if pooled else math.nan,
            notes=_notes(rows),
        )

    def _class_metrics(self, name: str, state: _ClassState) -> ClassMetrics:
        labels, scores = np.concatenate(state.labels), np.concatenate(state.scores)
        pixels = state.pixels
        return ClassMetrics(
            class_name=name,
            n_images=int(labels.size),
            n_anomalous=int(labels.sum()),
            image_auroc=auroc(labels, scores),
            image_ap=average_precision(labels, scores),
            image_f1_max=f1_max(labels, scores).f1,
            pixel_auroc=pixels.auroc() if pixels else math.nan,
            pixel_ap=pixels.average_precision() if pixels else math.nan,
            pixel_aupro=pixels.aupro(self.aupro_method) if pixels else math.nan,
            pixel_f1_max=pixels.f1_max().f1 if pixels else math.nan,
        )

    def _pooled_pixels(self) -> PixelAccumulator | None:
        per_class = [s.pixels for s in self._classes.values() if s.pixels is not None]
        if not per_class:
            return None
        pooled = PixelAccumulator(self.bins)
        for pixels in per_class:
            pooled.merge(pixels)
        return pooled

    def _thresholds(self, pooled: PixelAccumulator | None) -> Thresholds:
        states = self._classes.values()
        labels = np.concatenate([np.concatenate(s.labels) for s in states])
        scores = np.concatenate([np.concatenate(s.scores) for s in states])
        image = f1_max(labels, scores)
        pixel = pooled.f1_max() if pooled else None
        return Thresholds(
            image=image.threshold,
            pixel=pixel.threshold if pixel else math.nan,
            image_f1=image.f1,
            pixel_f1=pixel.f1 if pixel else math.nan,
        )


def _mean_row(rows: Sequence[ClassMetrics]) -> ClassMetrics:
    means = {name: _nanmean([getattr(r, name) for r in rows]) for name in METRIC_NAMES}
    return ClassMetrics(
        class_name=MEAN_ROW,
        n_images=sum(r.n_images for r in rows),
        n_anomalous=sum(r.n_anomalous for r in rows),
        **means,
    )


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _notes(rows: Sequence[ClassMetrics]) -> tuple[str, ...]:
    notes = []
    for row in rows:
        undefined = [name for name in METRIC_NAMES if math.isnan(getattr(row, name))]
        if undefined:
            notes.append(f"{row.class_name}: undefined ({_reason(row)}): {', '.join(undefined)}")
    if notes:
        notes.append("the mean row averages the defined values only")
    return tuple(notes)


def _reason(row: ClassMetrics) -> str:
    if row.n_anomalous == 0:
        return "no anomalous image"
    if row.n_anomalous == row.n_images:
        return "no normal image"
    return "degenerate pixels (no mask region, no normal pixel or constant maps)"
