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

_MEAN = np.asarray(OPENAI_DATASET_MEAN, dtype=np.float32).reshape(3, 1, 1)
_STD = np.asarray(OPENAI_DATASET_STD, dtype=np.float32).reshape(3, 1, 1)


def resize_to_model(image: Image.Image, image_size: int) -> Image.Image:
    """Squash ``image`` to ``image_size`` x ``image_size`` in its own mode, then make it RGB."""
    if image.size != (image_size, image_size):
        image = image.resize((image_size, image_size), Image.Resampling.BICUBIC)
    return image.convert("RGB")


def normalize_rgb(rgb: np.ndarray) -> np.ndarray:
    """uint8 ``(S, S, 3)`` -> normalised float32 ``(3, S, S)``, as ToTensor + Normalize."""
    chw = rgb.transpose(2, 0, 1).astype(np.float32) / np.float32(255.0)
    return (chw - _MEAN) / _STD


def preprocess_image(image: Image.Image, image_size: int) -> torch.Tensor:
    """PIL image (any mode PIL opens) -> model input ``(3, S, S)`` float32."""
    rgb = np.asarray(resize_to_model(image, image_size), dtype=np.uint8)
    return torch.from_numpy(normalize_rgb(rgb))
