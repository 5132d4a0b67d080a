"""Losses against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from vip2clip.model.detector import DetectorOutput
from vip2clip.model.losses import detector_loss, dice_loss, focal_loss


def test_focal_loss_matches_hand_computation() -> None:
    # One image, 1x2 pixels; abnormal probabilities 0.9 (target 1) and 0.2 (target 0).
    probs = torch.tensor([[[[0.1, 0.8]], [[0.9, 0.2]]]])  # (1, 2, 1, 2)
    target = torch.tensor([[[1, 0]]])
    s = 1e-5
    # p_t = (1 - s) * p_true + s * p_other + s
    p1 = (1 - s) * 0.9 + s * 0.1 + s
    p2 = (1 - s) * 0.8 + s * 0.2 + s
    expected = (-((1 - p1) ** 2) * math.log(p1) - (1 - p2) ** 2 * math.log(p2)) / 2
    assert focal_loss(probs, target).item() == pytest.approx(expected, rel=1e-6)


def test_focal_loss_is_near_zero_for_confident_correct_predictions() -> None:
    probs = torch.tensor([[[[0.0]], [[1.0]]]])
    assert focal_loss(probs, torch.tensor([[[1]]])).item() < 1e-9
    assert focal_loss(probs, torch.tensor([[[0]]])).item() > 5.0


def test_dice_loss_hand_values() -> None:
    p = torch.tensor([[[0.5, 0.5], [0.0, 1.0]]])
    t = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    # intersection 1.5, |p| 2, |t| 2 -> 1 - (3 + 1) / (4 + 1)
    assert dice_loss(p, t).item() == pytest.approx(1 - 4 / 5)
    # Empty prediction and empty mask: smoothing makes it a perfect match.
    assert dice_loss(torch.zeros(1, 2, 2), torch.zeros(1, 2, 2)).item() == pytest.approx(0.0)


def test_detector_loss_sums_taps_and_adds_image_cross_entropy() -> None:
    torch.manual_seed(0)
    abnormal = torch.rand(3, 2, 4, 4)
    prob_maps = torch.stack([1 - abnormal, abnormal], dim=2)  # (T=3, B=2, 2, 4, 4)
    logits = torch.tensor([[2.0, -1.0], [0.5, 1.5]])
    out = DetectorOutput(torch.zeros(2), torch.zeros(2, 4, 4), prob_maps, logits)
    masks = torch.zeros(2, 4, 4)
    masks[1, :2, :2] = 0.7  # binarised at 0.5 -> 1
    labels = torch.tensor([0, 1])
    terms = detector_loss(out, masks, labels)
    gt = (masks > 0.5).float()
    pixel = sum(
        focal_loss(p, gt) + dice_loss(p[:, 1], gt) + dice_loss(p[:, 0], 1 - gt) for p in prob_maps
    )
    image = torch.nn.functional.cross_entropy(logits, labels)
    assert terms.pixel.item() == pytest.approx(float(pixel), rel=1e-6)
    assert terms.image.item() == pytest.approx(float(image), rel=1e-6)
    assert terms.total.item() == pytest.approx(float(pixel + image), rel=1e-6)
