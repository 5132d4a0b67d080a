"""The inference stage: a callable class Ray Data runs as an actor pool.

The detector is loaded once per actor (``__init__``); each call scores the
``ok`` rows of a decoded block in one batch and passes error rows through
untouched. Model internals stay behind :class:`vip2clip.model.Detector`.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa

from vip2clip.data.decode import INFERENCE_FAILED
from vip2clip.results.schema import STATUS_OK
from vip2clip.scoring.config import DEFAULT_IMAGE_THRESHOLD, DEFAULT_PIXEL_THRESHOLD
from vip2clip.scoring.stages import (
    DETAIL_MAX_CHARS,
    MAP_DTYPE,
    MS_PER_S,
    SCORED_SCHEMA,
    pixels_array,
)
from vip2clip.storage import StorageConfig


class Thresholds:
    """Decision thresholds: config override, else the learner's metadata, else the default."""

    def __init__(
        self,
        image: float | None,
        pixel: float | None,
        detector_image: float | None,
        detector_pixel: float | None,
    ) -> None:
        self.image = _first(image, detector_image, DEFAULT_IMAGE_THRESHOLD)
        self.pixel = _first(pixel, detector_pixel, DEFAULT_PIXEL_THRESHOLD)


class InferenceWorker:
    """Ray Data callable class: decoded block -> scored block."""

    def __init__(
        self,
        detector_config: Any,
        storage_config: StorageConfig,
        image_threshold: float | None,
        pixel_threshold: float | None,
        run_id: str,
        cpu_threads: int,
    ) -> None:
        import torch

        from vip2clip.model import load_detector
        from vip2clip.telemetry.live import PipelineMetrics

        torch.set_num_threads(max(1, cpu_threads))
        self.detector = load_detector(detector_config, storage_config)
        self.thresholds = Thresholds(
            image_threshold,
            pixel_threshold,
            self.detector.image_threshold,
            self.detector.pixel_threshold,
        )
        self.metrics = PipelineMetrics("score", run_id, self.detector.identity)

    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        ok = [r for r in rows if r["status"] == STATUS_OK]
        for row in rows:
            self._prefill(row)
        if ok:
            self.metrics.actors_busy(1)
            try:
                self._score(ok)
            finally:
                self.metrics.actors_busy(-1)
        return pa.Table.from_pylist(rows, schema=SCORED_SCHEMA)

    def _prefill(self, row: dict[str, Any]) -> None:
        row.update(
            model_id=self.detector.identity,
            image_threshold=self.thresholds.image,
            pixel_threshold=self.thresholds.pixel,
            image_score=None,
            map_size=None,
            anomaly_map=None,
            inference_ms=None,
        )

    def _score(self, rows: list[dict[str, Any]]) -> None:
        """Score ``rows`` in one batch; if the batch fails, retry one by one to isolate it."""
        try:
            self._forward(rows)
        except Exception:
            for row in rows:
                try:
                    self._forward([row])
                except Exception as exc:
                    detail = f"{type(exc).__name__}: {exc}"[:DETAIL_MAX_CHARS]
                    row.update(status="error", error_reason=INFERENCE_FAILED, error_detail=detail)
                    self.metrics.error(INFERENCE_FAILED)
        for row in rows:
            row.pop("pixels", None)

    def _forward(self, rows: list[dict[str, Any]]) -> None:
        import torch

        size = self.detector.image_size
        rgb = torch.from_numpy(np.stack([pixels_array(r["pixels"], size) for r in rows]))
        start = time.perf_counter()
        out = self.detector.score_rgb(rgb)
        seconds = time.perf_counter() - start
        scores = out.scores.numpy().astype(np.float64)
        maps = out.anomaly_maps.numpy().astype(MAP_DTYPE, copy=False)
        per_image_ms = seconds * MS_PER_S / len(rows)
        for row, score, anomaly in zip(rows, scores, maps, strict=True):
            row.update(
                image_score=float(score),
                map_size=int(anomaly.shape[0]),
                anomaly_map=np.ascontiguousarray(anomaly).tobytes(),
                inference_ms=per_image_ms,
            )
        self.metrics.observe_latency("inference", seconds)
        self.metrics.batch_size(len(rows))
        self.metrics.objects("scored", len(rows))


def _first(*values: float | None) -> float:
    for value in values:
        if value is not None:
            return float(value)
    raise ValueError("no threshold given")  # unreachable: the last value is a default
