"""Scoring labelled samples for evaluation: one function, used locally and in Ray actors.

:func:`score_samples` loads a batch of dataset samples (image + mask), runs
``Detector.score_pixels`` once on the batch and returns plain numpy columns, the shape Ray Data
batches have. Bad entries never raise here: they come back as rows with ``ok = False`` and a
reason, and the driver applies the dataset's bad-entry policy, so local and Ray evaluation
behave the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from vip2clip.data.datasets import BadEntryError, Sample, load_sample
from vip2clip.storage import StorageConfig

if TYPE_CHECKING:
    from vip2clip.model import Detector, DetectorConfig

Batch = dict[str, npt.NDArray[Any]]

# Output columns of a scored batch.
SAMPLE_COLUMNS = ("image_uri", "mask_uri", "label", "class_name", "defect_type")
SCORED_COLUMNS = ("ok", "error_reason", "error_detail", "score", "anomaly_map", "mask")


def score_samples(detector: Detector, samples: Sequence[Sample], storage: StorageConfig) -> Batch:
    """Load and score ``samples`` in one forward pass.

    Returns columns: the sample fields, ``ok`` (B,) bool, ``error_reason`` / ``error_detail``
    (B,) str, ``score`` (B,) float32, ``anomaly_map`` (B, S, S) float32 and ``mask`` (B, S, S)
    uint8 — zeros for rows that failed to load.
    """
    import torch

    size = detector.image_size
    count = len(samples)
    ok = np.zeros(count, dtype=bool)
    reasons, details = [""] * count, [""] * count
    pixels = torch.zeros((count, 3, size, size), dtype=torch.float32)
    masks = np.zeros((count, size, size), dtype=np.uint8)
    for i, sample in enumerate(samples):
        try:
            image, mask = load_sample(sample, size, storage)
        except BadEntryError as error:
            reasons[i], details[i] = error.reason, error.detail
            continue
        pixels[i], masks[i], ok[i] = image, mask.numpy().astype(np.uint8), True
    scores = np.zeros(count, dtype=np.float32)
    maps = np.zeros((count, size, size), dtype=np.float32)
    if ok.any():
        output = detector.score_pixels(pixels[torch.from_numpy(ok)])
        scores[ok] = output.scores.numpy()
        maps[ok] = output.anomaly_maps.numpy()
    return {
        **_sample_columns(samples),
        "ok": ok,
        "error_reason": np.array(reasons, dtype=object),
        "error_detail": np.array(details, dtype=object),
        "score": scores,
        "anomaly_map": maps,
        "mask": masks,
    }


def samples_from_batch(batch: Batch) -> list[Sample]:
    """Rebuild :class:`Sample` objects from a batch of their columns."""
    count = len(batch["image_uri"])
    return [Sample.from_row({c: batch[c][i] for c in SAMPLE_COLUMNS}) for i in range(count)]


def _sample_columns(samples: Sequence[Sample]) -> Batch:
    return {
        "image_uri": np.array([s.image_uri for s in samples], dtype=object),
        "mask_uri": np.array([s.mask_uri or "" for s in samples], dtype=object),
        "label": np.array([s.label for s in samples], dtype=np.int64),
        "class_name": np.array([s.class_name for s in samples], dtype=object),
        "defect_type": np.array([s.defect_type for s in samples], dtype=object),
    }


class SampleScorer:
    """Ray Data callable class: loads the detector once per actor, scores batches of samples."""

    def __init__(self, detector: DetectorConfig, storage: StorageConfig) -> None:
        from vip2clip.model import load_detector

        self.storage = storage
        self.detector = load_detector(detector, storage)

    def __call__(self, batch: Batch) -> Batch:
        """Score one Ray Data batch of sample rows (numpy format)."""
        return score_samples(self.detector, samples_from_batch(batch), self.storage)
