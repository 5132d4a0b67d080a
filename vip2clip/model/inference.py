"""Inference wrapper: a detector loaded once, scoring pixels, images, arrays or paths."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vip2clip.data.decode import decode_image
from vip2clip.data.preprocess import normalize_rgb, preprocess_image
from vip2clip.errors import CheckpointError
from vip2clip.model.backbone import load_backbone
from vip2clip.model.checkpoint import LearnerMetadata, load_learner
from vip2clip.model.detector import DetectorConfig, DetectorOutput, ViP2CLIP
from vip2clip.model.identity import model_identity
from vip2clip.storage import StorageConfig

ImageInput = Image.Image | np.ndarray | bytes | str | Path


def resolve_device(name: str) -> torch.device:
    """``auto`` -> the first CUDA device when present, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Detector:
    """A ready-to-score ViP²-CLIP: weights loaded once, eval mode, on its device."""

    def __init__(
        self, model: ViP2CLIP, metadata: LearnerMetadata, device: torch.device, identity: str
    ) -> None:
        self.model = model.to(device).eval()
        self.metadata = metadata
        self.device = device
        self.config = model.config
        self.identity = identity
        """Stable id of backbone + learner + settings (what a result row was scored with)."""

    @property
    def image_size(self) -> int:
        return self.config.image_size

    @property
    def image_threshold(self) -> float | None:
        return self.metadata.image_threshold

    @property
    def pixel_threshold(self) -> float | None:
        return self.metadata.pixel_threshold

    def score_pixels(self, pixels: torch.Tensor) -> DetectorOutput:
        """Preprocessed ``(B, 3, S, S)`` -> outputs on the CPU, float32."""
        return self._forward(self._to_device(pixels))

    def score_rgb(self, rgb: torch.Tensor) -> DetectorOutput:
        """Resized uint8 ``(B, S, S, 3)`` -> outputs on the CPU, float32.

        The uint8 batch crosses to the device (a quarter of the float bytes) and is
        normalised there, bit-identically to :func:`~vip2clip.data.preprocess.normalize_rgb`
        on the CPU.
        """
        return self._forward(normalize_rgb(self._to_device(rgb)))

    def score_images(self, images: Sequence[ImageInput]) -> DetectorOutput:
        """PIL images, uint8 arrays ``(H, W[, C])``, encoded bytes or file paths, in one batch.

        Bytes and files are decoded by :func:`~vip2clip.data.decode.decode_image`, exactly
        as batch scoring does (EXIF orientation applied, odd modes normalised).
        """
        pixels = torch.stack([preprocess_image(_as_pil(i), self.image_size) for i in images])
        return self.score_pixels(pixels)

    def _to_device(self, batch: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda" and batch.device.type == "cpu" and not batch.is_pinned():
            batch = batch.pin_memory()  # lets the host-to-device copy overlap compute
        return batch.to(self.device, non_blocking=True)

    def _forward(self, pixels: torch.Tensor) -> DetectorOutput:
        with torch.inference_mode(), self._autocast():
            out = self.model(pixels)
        return DetectorOutput(*(t.float().cpu() for t in out))

    def _autocast(self) -> contextlib.AbstractContextManager[None]:
        if self.config.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()


def load_detector(config: DetectorConfig, storage: StorageConfig | None = None) -> Detector:
    """Build the backbone, load the learner checkpoint (if any) and return a :class:`Detector`.

    Without ``config.learner`` the learner keeps its seeded initialisation (useful only
    for tests, demos and benchmarks).
    """
    backbone = load_backbone(config.backbone, storage)
    metadata = LearnerMetadata(prompts=config.prompts)
    state = None
    if config.learner:
        state, metadata = load_learner(config.learner, storage)
        config = config.model_copy(update={"prompts": metadata.prompts})
    model = ViP2CLIP(backbone, config)
    if state is not None:
        load_learner_state(model, state, str(config.learner))
    identity = model_identity(backbone.identity, config, metadata, state)
    return Detector(model, metadata, resolve_device(config.device), identity)


def load_learner_state(model: ViP2CLIP, state: dict[str, torch.Tensor], source: str) -> None:
    """Load learner tensors into ``model``, or say why they do not fit its backbone."""
    expected = model.learner.state_dict()
    wrong = [
        f"{name} {tuple(state[name].shape)} != {tuple(tensor.shape)}"
        for name, tensor in expected.items()
        if name in state and state[name].shape != tensor.shape
    ]
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if wrong or missing or unexpected:
        raise CheckpointError(
            f"learner {source} does not fit this backbone/prompt settings: "
            f"shape mismatches {wrong[:2]}, missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    model.learner.load_state_dict(state, strict=True)


def _as_pil(item: ImageInput) -> Image.Image:
    if isinstance(item, Image.Image):
        return item
    if isinstance(item, np.ndarray):
        if item.dtype != np.uint8:
            raise TypeError(f"arrays must be uint8, got {item.dtype}")
        return Image.fromarray(item)
    if isinstance(item, bytes):
        return decode_image(item)
    # Files go through the same decoder as batch scoring: one set of rules for every input.
    return decode_image(Path(item).read_bytes())
