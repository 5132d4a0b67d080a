"""Distributed training of the ViP²-CLIP learner on Ray Train.

``TrainingConfig`` (YAML + overrides) -> :func:`run_training` -> the final learner's URI.
Torch-only pieces live in :mod:`~vip2clip.training.steps`; Ray wiring in
:mod:`~vip2clip.training.trainer` and the per-worker loop in :mod:`~vip2clip.training.loop`.
Import :mod:`vip2clip.training.trainer` for ``run_training`` (it pulls in Ray lazily).
"""

from vip2clip.training.config import TrainingConfig, load_training_config

__all__ = ["TrainingConfig", "load_training_config"]
