"""Content-addressed model identity: what a result row was scored with.

The id is a digest of the backbone weights (the file's bytes, or the open_clip
name plus pretrained tag, or the seed of a random init), the learner's tensors
(names, dtypes, shapes and values — not the file, its name, its format or when
it was written) and the settings that change outputs. It is therefore the same
across reloads, hosts, copies and renames of the files, and for an official
``.pth`` and its safetensors conversion; any weight or setting that differs
changes it. It is computed without building the model.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch

from vip2clip.model.backbone import backbone_fingerprint, file_sha256
from vip2clip.model.checkpoint import LearnerMetadata, load_learner
from vip2clip.model.detector import DetectorConfig
from vip2clip.storage import StorageConfig, local_copy

ID_PREFIX = "vip2clip-"
ID_HEX_CHARS = 16  # 64 bits: collisions are negligible for the models a table ever sees
# DetectorConfig fields that change scores or maps (device, compile and seed of a trained
# learner do not; precision does).
OUTPUT_SETTINGS = {"image_size", "taps", "top_k", "sigma", "prompts", "precision"}


def tensors_fingerprint(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over tensor names, dtypes, shapes and values, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # Flattened first: a 0-d tensor cannot be viewed as bytes.
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def model_identity(
    backbone: str,
    config: DetectorConfig,
    metadata: LearnerMetadata,
    learner: Mapping[str, torch.Tensor] | None,
) -> str:
    """The id of a detector from its backbone fingerprint, settings and learner tensors."""
    settings = config.model_copy(update={"prompts": metadata.prompts}).model_dump_json(
        include=OUTPUT_SETTINGS
    )
    weights = tensors_fingerprint(learner) if learner is not None else f"seed{config.seed}"
    text = f"{backbone}|{weights}|{settings}"
    return ID_PREFIX + hashlib.sha256(text.encode()).hexdigest()[:ID_HEX_CHARS]


def detector_identity(config: DetectorConfig, storage: StorageConfig | None = None) -> str:
    """:func:`model_identity` of a detector config, reading the weight files but building
    nothing (what the scoring driver needs before the inference actors start)."""
    metadata = LearnerMetadata(prompts=config.prompts)
    learner = None
    if config.learner:
        learner, metadata = load_learner(config.learner, storage)
    spec = config.backbone
    digest = file_sha256(local_copy(spec.weights, storage)) if spec.weights else None
    return model_identity(backbone_fingerprint(spec, digest), config, metadata, learner)
