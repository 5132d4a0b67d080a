"""The ViP²-CLIP detector: frozen CLIP + learned prompts (ICA) + FGP -> scores and maps."""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vip2clip.config import MAX_IMAGE_SIZE, FrozenConfig
from vip2clip.model.backbone import Backbone, BackboneSpec
from vip2clip.model.constants import (
    DEFAULT_IMAGE_SIZE,
    DEFAULT_SIGMA,
    DEFAULT_TOP_K,
    SEED,
    TEMPERATURE,
)
from vip2clip.model.fgp import FineGrainedPerception
from vip2clip.model.maps import gaussian_blur, upsample_patch_grid
from vip2clip.model.prompts import PromptConfig, PromptLearner, encode_prompts
from vip2clip.model.vision import ImageTower, VisualFeatures
from vip2clip.storage import SafeUri

NORMAL, ABNORMAL = 0, 1  # channel order of every 2-way output
MIN_IMAGE_SIZE = 14  # one ViT-L/14 patch


class DetectorConfig(FrozenConfig):
    """Everything that defines a detector's outputs, apart from the weights themselves."""

    backbone: BackboneSpec = Field(default_factory=BackboneSpec)
    learner: SafeUri | None = Field(default=None, description="learner checkpoint path or URI")
    image_size: int = Field(
        default=DEFAULT_IMAGE_SIZE, ge=MIN_IMAGE_SIZE, le=MAX_IMAGE_SIZE, description="px per side"
    )
    taps: tuple[int, ...] | None = Field(
        default=None, description="1-based blocks to tap; None = quarters of the depth"
    )
    top_k: int = Field(default=DEFAULT_TOP_K, ge=1)
    sigma: float = Field(default=DEFAULT_SIGMA, ge=0)
    prompts: PromptConfig = Field(default_factory=PromptConfig)
    device: str = Field(default="auto", description="auto | cpu | cuda | cuda:N")
    precision: Literal["fp32", "bf16"] = "fp32"
    compile: bool = Field(
        default=False,
        description="torch.compile the image tower (faster after a one-off compile per shape)",
    )
    seed: int = Field(default=SEED, description="initialisation of an untrained learner")


def default_taps(depth: int) -> tuple[int, ...]:
    """Evenly spaced quarters of the depth: (6, 12, 18, 24) for 24 blocks."""
    return tuple(sorted({max(1, round(depth * q / 4)) for q in (1, 2, 3, 4)}))


class DetectorOutput(NamedTuple):
    """Per-batch outputs. ``scores`` ``(B,)``; ``anomaly_maps`` ``(B, S, S)`` smoothed;
    ``prob_maps`` ``(T, B, 2, S, S)`` upsampled per-tap probabilities (normal, abnormal);
    ``image_logits`` ``(B, 2)`` = mean top-k cosines / temperature (for the image loss)."""

    scores: torch.Tensor
    anomaly_maps: torch.Tensor
    prob_maps: torch.Tensor
    image_logits: torch.Tensor


class Learner(nn.Module):
    """The trainable part: prompt learner (ICA) and FGP (~4.2 M parameters for ViT-L)."""

    def __init__(self, backbone: Backbone, prompts: PromptConfig) -> None:
        super().__init__()
        self.prompt_learner = PromptLearner(backbone.clip, prompts)
        self.fgp = FineGrainedPerception(backbone.embed_dim)


class ViP2CLIP(nn.Module):
    """ViP²-CLIP as a torch module: :meth:`encode` (frozen) then :meth:`head` (learned)."""

    def __init__(self, backbone: Backbone, config: DetectorConfig) -> None:
        super().__init__()
        self.backbone_identity = backbone.identity
        self.clip = backbone.clip
        self.config = config
        self.taps = config.taps or default_taps(backbone.depth)
        if max(self.taps) > backbone.depth or min(self.taps) < 1:
            raise ValueError(f"taps {self.taps} outside the backbone's 1..{backbone.depth} blocks")
        if config.image_size < backbone.patch_size:
            raise ValueError(f"image_size {config.image_size} is below the patch size")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            self.learner = Learner(backbone, config.prompts)
        self.image_tower = ImageTower(config.compile)

    def train(self, mode: bool = True) -> ViP2CLIP:
        super().train(mode)
        self.clip.eval()  # the backbone is frozen: never in training mode
        return self

    def encode(self, pixels: torch.Tensor) -> VisualFeatures:
        """Frozen image tower over ``(B, 3, S, S)``; no gradients, cacheable."""
        with torch.no_grad():
            return self.image_tower(self.clip.visual, pixels, self.taps)

    def head(self, features: VisualFeatures, *, smooth: bool = True) -> DetectorOutput:
        """Learned part from cached or fresh features to scores and maps."""
        taps, global_feature = features
        batch = global_feature.shape[0]
        prompts, tokens = self.learner.prompt_learner(global_feature)
        text = encode_prompts(self.clip, prompts, tokens)  # (2B, E): normal rows, then abnormal
        text = torch.stack(text.chunk(2), dim=1)  # (B, 2, E)
        size = self.config.image_size
        layer_maps, prob_maps, picked = [], [], []
        for tapped in taps:  # (B, 1 + N, E)
            patches = F.normalize(tapped, dim=-1)[:, 1:]
            aux = self.learner.fgp(text, patches)  # (B, 2, E)
            cos = patches @ aux.transpose(1, 2)  # (B, N, 2)
            prob = (cos / TEMPERATURE).softmax(dim=-1)
            up = upsample_patch_grid(prob, size)  # (B, 2, S, S)
            prob_maps.append(up)
            layer_maps.append((up[:, ABNORMAL] + 1 - up[:, NORMAL]) / 2)
            k = min(self.config.top_k, prob.shape[1])
            index = prob[..., ABNORMAL].topk(k, dim=1, sorted=False).indices  # (B, k)
            picked.append(cos.gather(1, index.unsqueeze(-1).expand(-1, -1, 2)))
        mean_cos = torch.cat(picked, dim=1).mean(dim=1)  # (B, 2)
        image_logits = mean_cos / TEMPERATURE
        scores = image_logits.softmax(dim=-1)[:, ABNORMAL]
        raw_map = torch.stack(layer_maps).mean(dim=0)
        anomaly_maps = gaussian_blur(raw_map, self.config.sigma) if smooth else raw_map
        assert anomaly_maps.shape == (batch, size, size)
        return DetectorOutput(scores, anomaly_maps, torch.stack(prob_maps), image_logits)

    def forward(self, pixels: torch.Tensor) -> DetectorOutput:
        return self.head(self.encode(pixels))
