"""vip2clip: ViP²-CLIP zero-shot anomaly detection as a distributed batch-scoring system.

The Python API in short::

    from vip2clip import DetectorConfig, load_detector

    detector = load_detector(DetectorConfig(learner="s3://models/learner.safetensors"))
    out = detector.score_images(["part-001.png", "part-002.png"])
    out.scores          # (B,) image anomaly scores in [0, 1]
    out.anomaly_maps    # (B, S, S) smoothed pixel anomaly maps

The model names are loaded on first use, so light imports (the CLI, telemetry)
do not pay for torch and open_clip.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vip2clip.model import BackboneSpec, Detector, DetectorConfig, PromptConfig, load_detector

__all__ = ["BackboneSpec", "Detector", "DetectorConfig", "PromptConfig", "load_detector"]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("vip2clip.model"), name)
    raise AttributeError(f"module 'vip2clip' has no attribute {name!r}")
