"""The inference wrapper's entry points agree with each other."""

from __future__ import annotations

import numpy as np
import torch

from vip2clip.data.preprocess import normalize_rgb
from vip2clip.model import BackboneSpec, DetectorConfig, load_detector

SIZE = 32


def test_uint8_batches_score_exactly_like_normalised_pixels() -> None:
    detector = load_detector(DetectorConfig(backbone=BackboneSpec.tiny(), image_size=SIZE))
    rgb = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), np.uint8))
    from_rgb = detector.score_rgb(rgb)
    from_pixels = detector.score_pixels(normalize_rgb(rgb))
    assert torch.equal(from_rgb.scores, from_pixels.scores)
    assert torch.equal(from_rgb.anomaly_maps, from_pixels.anomaly_maps)
