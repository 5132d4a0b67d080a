"""Ground-truth masks, read exactly as the official dataset code reads them.

The AnomalyCLIP / ViP²-CLIP ``Dataset`` binarises the mask file at ``> 0``
(after ``convert("L")``), stores it as an 8-bit 0/255 image, resizes it to
S x S with torchvision's default ``Resize`` (PIL bilinear on PIL images),
converts it with ``ToTensor`` (divide by 255) and the test/train code finally
binarises it at 0.5. A normal image gets an all-zero mask; so does an
anomalous image without a mask file ("classification only" entries).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from vip2clip.model.constants import MASK_THRESHOLD

MASK_ON = 255  # value of a defect pixel in the 8-bit masks the official code builds


def binarize_mask_image(mask: Image.Image) -> Image.Image:
    """Any-mode mask image -> mode ``L`` image, 255 where the mask is non-zero, else 0."""
    on = np.asarray(mask.convert("L")) > 0
    return Image.fromarray(on.astype(np.uint8) * MASK_ON, mode="L")


def empty_mask(image_size: int) -> torch.Tensor:
    """All-normal mask ``(S, S)`` float32."""
    return torch.zeros((image_size, image_size), dtype=torch.float32)


def mask_to_tensor(mask: Image.Image, image_size: int) -> torch.Tensor:
    """Mask image (any mode, any size) -> ``(S, S)`` float32 tensor of 0.0 / 1.0.

    Binarise at ``> 0``, bilinear resize to S x S, scale to [0, 1], binarise at
    :data:`MASK_THRESHOLD`, as the official pipeline does.
    """
    binary = binarize_mask_image(mask)
    resized = binary.resize((image_size, image_size), Image.Resampling.BILINEAR)
    scaled = torch.from_numpy(np.array(resized, dtype=np.uint8)).float().div(255.0)
    return (scaled > MASK_THRESHOLD).float()
