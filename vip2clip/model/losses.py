"""Training losses of the official recipe: focal + two dice terms per tap, plus image CE."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

from vip2clip.model.constants import FOCAL_GAMMA, FOCAL_SMOOTH, MASK_THRESHOLD
from vip2clip.model.detector import ABNORMAL, NORMAL, DetectorOutput

DICE_SMOOTH = 1.0  # additive smoothing of the official BinaryDiceLoss


class LossTerms(NamedTuple):
    """Scalar losses: ``total = pixel + image``."""

    total: torch.Tensor
    pixel: torch.Tensor
    image: torch.Tensor


def focal_loss(
    probs: torch.Tensor,
    target: torch.Tensor,
    gamma: float = FOCAL_GAMMA,
    smooth: float = FOCAL_SMOOTH,
) -> torch.Tensor:
    """Focal loss on class probabilities ``(B, C, H, W)`` vs integer targets ``(B, H, W)``.

    As the official FocalLoss: the one-hot target is clamped to
    ``[smooth / (C - 1), 1 - smooth]``, ``p_t = <one_hot, p> + smooth``, and the loss
    ``-(1 - p_t)^gamma * log(p_t)`` is averaged over all pixels.
    """
    classes = probs.shape[1]
    flat = probs.permute(0, 2, 3, 1).reshape(-1, classes)
    one_hot = F.one_hot(target.reshape(-1).long(), classes).to(flat.dtype)
    one_hot = one_hot.clamp(smooth / (classes - 1), 1.0 - smooth)
    p_t = (one_hot * flat).sum(dim=1) + smooth
    return (-((1 - p_t) ** gamma) * p_t.log()).mean()


def dice_loss(
    probs: torch.Tensor, target: torch.Tensor, smooth: float = DICE_SMOOTH
) -> torch.Tensor:
    """``1 - mean_b (2 |p t| + s) / (|p| + |t| + s)`` over images of ``(B, H, W)`` maps."""
    p = probs.reshape(probs.shape[0], -1)
    t = target.reshape(target.shape[0], -1).to(p.dtype)
    dice = (2 * (p * t).sum(1) + smooth) / (p.sum(1) + t.sum(1) + smooth)
    return 1 - dice.mean()


def detector_loss(output: DetectorOutput, masks: torch.Tensor, labels: torch.Tensor) -> LossTerms:
    """The ViP²-CLIP training objective.

    ``masks`` ``(B, S, S)`` (binarised at 0.5 here), ``labels`` ``(B,)`` in {0, 1}.
    Pixel loss, summed over taps: focal on both channels + dice(abnormal, mask) +
    dice(normal, 1 - mask). Image loss: cross-entropy of ``image_logits`` vs labels.
    """
    gt = (masks > MASK_THRESHOLD).to(output.prob_maps.dtype)
    pixel = output.prob_maps.new_zeros(())
    for probs in output.prob_maps:  # (B, 2, S, S) per tap
        pixel = pixel + focal_loss(probs, gt)
        pixel = pixel + dice_loss(probs[:, ABNORMAL], gt)
        pixel = pixel + dice_loss(probs[:, NORMAL], 1 - gt)
    image = F.cross_entropy(output.image_logits, labels.long())
    return LossTerms(pixel + image, pixel, image)
