"""ViP²-CLIP in plain torch on open_clip: backbone loading, prompts, FGP, detector, losses."""

from vip2clip.model.backbone import Backbone, BackboneSpec, load_backbone
from vip2clip.model.checkpoint import LearnerMetadata, load_learner, save_learner
from vip2clip.model.detector import DetectorConfig, DetectorOutput, Learner, ViP2CLIP
from vip2clip.model.identity import detector_identity, model_identity
from vip2clip.model.inference import Detector, load_detector
from vip2clip.model.prompts import PromptConfig
from vip2clip.model.vision import VisualFeatures

__all__ = [
    "Backbone",
    "BackboneSpec",
    "Detector",
    "DetectorConfig",
    "DetectorOutput",
    "Learner",
    "LearnerMetadata",
    "PromptConfig",
    "ViP2CLIP",
    "VisualFeatures",
    "detector_identity",
    "load_backbone",
    "load_detector",
    "load_learner",
    "model_identity",
    "save_learner",
]
