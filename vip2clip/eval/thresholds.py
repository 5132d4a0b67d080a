"""Decision thresholds: store an evaluation's F1-max thresholds in a learner checkpoint.

Batch scoring reads them from the checkpoint metadata (``Detector.image_threshold`` /
``pixel_threshold``) and uses them by default.
"""

from __future__ import annotations

import math

from vip2clip.errors import ConfigError
from vip2clip.eval.report import Thresholds
from vip2clip.model.checkpoint import LearnerMetadata, update_metadata
from vip2clip.storage import StorageConfig


def write_thresholds(
    learner_uri: str | None, thresholds: Thresholds, storage: StorageConfig | None = None
) -> LearnerMetadata:
    """Write ``thresholds.image`` / ``thresholds.pixel`` into the checkpoint's metadata.

    Raises :class:`~vip2clip.errors.ConfigError` when there is no learner checkpoint or a
    threshold is undefined (e.g. the dataset has no anomalous image or pixel) or outside
    the [0, 1] range of scores.
    """
    if not learner_uri:
        raise ConfigError(
            "--write-thresholds needs a learner checkpoint (detector.learner); "
            "an untrained learner has nowhere to store them"
        )
    if math.isnan(thresholds.image) or math.isnan(thresholds.pixel):
        raise ConfigError(
            "cannot write thresholds: F1-max is undefined on this dataset "
            "(it needs anomalous images with non-empty masks)"
        )
    for name, value in (("image", thresholds.image), ("pixel", thresholds.pixel)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(
                f"cannot write thresholds: the {name} threshold {value:.6g} is outside the "
                "[0, 1] range of scores"
            )
    return update_metadata(
        learner_uri,
        storage,
        image_threshold=thresholds.image,
        pixel_threshold=thresholds.pixel,
    )
