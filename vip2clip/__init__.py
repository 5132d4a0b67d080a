"""vip2clip: ViP²-CLIP zero-shot anomaly detection as a distributed batch-scoring system.

The Python API in short::

    from vip2clip import BackboneSpec, DetectorConfig, load_detector

    detector = load_detector(DetectorConfig(learner="s3://models/learner.safetensors"))
    out = detector.score_images(["part-001.png", "part-002.png"])
    out.scores          # (B,) image anomaly scores in [0, 1]
    out.anomaly_maps    # (B, S, S) smoothed pixel anomaly maps
"""

from vip2clip.model import BackboneSpec, Detector, DetectorConfig, PromptConfig, load_detector

__all__ = ["BackboneSpec", "Detector", "DetectorConfig", "PromptConfig", "load_detector"]
__version__ = "0.1.0"
