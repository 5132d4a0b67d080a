"""Ray-free pieces of one training step: model, optimiser, cached features, loss.

Kept apart from the Ray Train loop so they can be tested on plain tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vip2clip.model import DetectorOutput, LearnerMetadata, ViP2CLIP, VisualFeatures, load_backbone
from vip2clip.model.losses import LossTerms, detector_loss
from vip2clip.storage import StorageConfig
from vip2clip.training.config import OptimizerConfig, TrainingConfig
from vip2clip.training.feature_cache import FeatureCache, cache_key

# Names of one cached sample's tensors.
TAPS, GLOBAL, MASK, LABEL = "taps", "global_feature", "mask", "label"


@dataclass(frozen=True)
class Row:
    """One training sample on a worker; ``pixels`` is None when replayed from the cache."""

    key: str
    label: int
    mask: np.ndarray  # (S, S) uint8 in {0, 1}
    pixels: np.ndarray | None  # (3, S, S) float32
    cached: dict[str, torch.Tensor] | None = None  # the cache entry a replayed row came from


class LearnedHead(nn.Module):
    """The module DDP wraps: the learner is its only registered child (the frozen backbone
    is neither broadcast nor reduced); ``forward`` runs the detector's learned head."""

    def __init__(self, model: ViP2CLIP) -> None:
        super().__init__()
        self.learner = model.learner
        object.__setattr__(self, "_detector", model)  # deliberately not a registered child

    def forward(self, taps: torch.Tensor, global_feature: torch.Tensor) -> DetectorOutput:
        detector: ViP2CLIP = object.__getattribute__(self, "_detector")
        return detector.head(VisualFeatures(taps, global_feature), smooth=False)


def build_model(config: TrainingConfig, storage: StorageConfig) -> tuple[ViP2CLIP, LearnerMetadata]:
    """The detector to train (seeded learner, frozen backbone) and its checkpoint metadata."""
    backbone = load_backbone(config.detector.backbone, storage)
    model = ViP2CLIP(backbone, config.detector)
    metadata = LearnerMetadata(
        prompts=config.detector.prompts,
        taps=tuple(model.taps),
        image_size=config.detector.image_size,
        embed_dim=backbone.embed_dim,
        text_width=backbone.text_width,
        backbone=backbone.identity,
        training={
            "run_name": config.run_name,
            "dataset": config.dataset.model_dump(mode="json"),
            "optimizer": config.optimizer.model_dump(mode="json"),
            "workers": config.scaling.workers,
        },
    )
    return model, metadata


def build_optimizer(model: ViP2CLIP, config: OptimizerConfig) -> torch.optim.Adam:
    """Adam with the recipe's two learning rates: prompts (ICA) and FGP."""
    return torch.optim.Adam(
        [
            {"params": list(model.learner.prompt_learner.parameters()), "lr": config.lr_prompt},
            {"params": list(model.learner.fgp.parameters()), "lr": config.lr_fgp},
        ]
    )


def sample_key(model: ViP2CLIP, image_uri: str) -> str:
    """Cache key of a sample's features under this model's backbone, taps and image size."""
    return cache_key(image_uri, model.backbone_identity, model.config.image_size, tuple(model.taps))


def batch_features(
    model: ViP2CLIP,
    rows: Sequence[Row],
    cache: FeatureCache | None,
    device: torch.device,
    encode_batch: int | None = None,
) -> VisualFeatures:
    """Frozen features of ``rows`` in order: from the cache where present, else encoded
    (and then cached). ``taps`` ``(T, B, 1 + N, D)``, ``global_feature`` ``(B, D)``.

    The rows the cache lacks are encoded together in forward passes of exactly
    ``encode_batch`` images (default: ``len(rows)``), see :func:`encode_rows`.
    """
    found: dict[int, dict[str, torch.Tensor]] = {}
    for i, row in enumerate(rows):
        if row.cached is not None:
            found[i] = row.cached
        elif cache is not None:
            entry = cache.get(sample_key(model, row.key))
            if entry is not None:
                found[i] = entry
    missing = [i for i in range(len(rows)) if i not in found]
    encoded = encode_rows(model, [rows[i] for i in missing], device, encode_batch or len(rows))
    for i, entry in zip(missing, encoded, strict=True):
        found[i] = entry
        if cache is not None:
            cache.put(sample_key(model, rows[i].key), _with_target(entry, rows[i]))
    taps = torch.stack([found[i][TAPS].to(device) for i in range(len(rows))], dim=1)
    global_feature = torch.stack([found[i][GLOBAL].to(device) for i in range(len(rows))])
    return VisualFeatures(taps, global_feature)


def encode_rows(
    model: ViP2CLIP, rows: Sequence[Row], device: torch.device, encode_batch: int
) -> list[dict[str, torch.Tensor]]:
    """Frozen features of each row: ``taps`` ``(T, 1 + N, D)``, ``global_feature`` ``(D,)``.

    Every forward pass has the same shape, ``encode_batch`` images (a short last chunk is
    padded with zero images), so a sample's features do not depend on which other samples
    share its pass: the matrix kernels, chosen by shape, and each image's reduction order
    stay fixed. Cached features (encoded in the first epoch's batches) and fresh ones
    (encoded in a later epoch's differently shuffled batches) are then bit-identical,
    while the GPU still sees whole batches.
    """
    if encode_batch < 1:
        raise ValueError(f"encode_batch must be positive, got {encode_batch}")
    entries: list[dict[str, torch.Tensor]] = []
    for start in range(0, len(rows), encode_batch):
        chunk = rows[start : start + encode_batch]
        pixels = torch.from_numpy(np.stack([_pixels(row) for row in chunk]))
        if len(chunk) < encode_batch:
            padding = pixels.new_zeros((encode_batch - len(chunk), *pixels.shape[1:]))
            pixels = torch.cat([pixels, padding])
        encoded = model.encode(pixels.to(device))
        entries.extend(
            {TAPS: encoded.taps[:, i], GLOBAL: encoded.global_feature[i]} for i in range(len(chunk))
        )
    return entries


def batch_targets(rows: Sequence[Row], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks ``(B, S, S)`` float {0, 1} and labels ``(B,)`` int64 of ``rows``."""
    masks = torch.from_numpy(np.stack([row.mask for row in rows])).to(device).float()
    labels = torch.tensor([row.label for row in rows], dtype=torch.long, device=device)
    return masks, labels


def row_from_cache(entry: dict[str, torch.Tensor], key: str) -> Row:
    """A replayable row from a cached entry (targets are cached with the features)."""
    return Row(
        key=key, label=int(entry[LABEL]), mask=entry[MASK].numpy(), pixels=None, cached=entry
    )


def train_step(
    head: nn.Module,
    optimizer: torch.optim.Optimizer,
    features: VisualFeatures,
    masks: torch.Tensor,
    labels: torch.Tensor,
) -> LossTerms:
    """One optimiser step on the learned head (DDP-wrapped or not); returns the loss terms."""
    output = head(features.taps, features.global_feature)
    terms = detector_loss(output, masks, labels)
    optimizer.zero_grad(set_to_none=True)
    terms.total.backward()
    optimizer.step()
    return terms


def _pixels(row: Row) -> np.ndarray:
    if row.pixels is None:
        raise RuntimeError(f"sample {row.key} was replayed without pixels but is not cached")
    return row.pixels


def _with_target(entry: dict[str, torch.Tensor], row: Row) -> dict[str, torch.Tensor]:
    return {
        **entry,
        MASK: torch.tensor(row.mask, dtype=torch.uint8),
        LABEL: torch.tensor(row.label, dtype=torch.int64),
    }
