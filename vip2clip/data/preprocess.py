"""Model-input preprocessing, exactly as the official ViP²-CLIP transform does it.

The official pipeline resizes the PIL image *in its own mode* to S x S with PIL
bicubic (aspect ratio not kept, antialiased when shrinking; RGBA resized with
premultiplied alpha), only then converts to RGB (alpha dropped, grey
replicated), and normalises with the OpenAI statistics. A tensor-side resize
differs by ~1e-2 in the anomaly map, so this is the one implementation used by
the model API, evaluation, training and batch scoring.
"""

from __future__ import annotations

import numpy as np
import torch
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
from PIL import Image

_MEAN = torch.tensor(OPENAI_DATASET_MEAN, dtype=torch.float32).reshape(3, 1, 1)
_STD = torch.tensor(OPENAI_DATASET_STD, dtype=torch.float32).reshape(3, 1, 1)


def resize_to_model(image: Image.Image, image_size: int) -> Image.Image:
    """Squash ``image`` to ``image_size`` x ``image_size`` in its own mode, then make it RGB."""
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return image.convert("RGB")


def normalize_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 ``(..., S, S, 3)`` -> normalised float32 ``(..., 3, S, S)``, as ToTensor +
    Normalize, on ``rgb``'s device: scoring moves uint8 batches (a quarter of the bytes) to
    the GPU and normalises there. Float32 IEEE arithmetic in the same order on every device,
    so the result is bit-identical on CPU and GPU."""
    if rgb.dtype != torch.uint8 or rgb.shape[-1] != 3:
        raise ValueError(f"expected uint8 (..., S, S, 3), got {rgb.dtype} {tuple(rgb.shape)}")
    chw = rgb.movedim(-1, -3).contiguous().float()  # transpose the bytes, not the floats
    return chw.div_(255.0).sub_(_MEAN.to(chw.device)).div_(_STD.to(chw.device))


def preprocess_image(image: Image.Image, image_size: int) -> torch.Tensor:
    """PIL image (any mode PIL opens) -> model input ``(3, S, S)`` float32."""
    rgb = np.array(resize_to_model(image, image_size), dtype=np.uint8)  # a writable copy
    return normalize_rgb(torch.from_numpy(rgb))
