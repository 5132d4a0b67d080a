"""Anomaly maps <-> compact 8-bit PNG masks stored in the ``mask_png`` column.

A map in ``[0, 1]`` at model resolution ``(S, S)`` is quantised to 256 levels
(``round(v * 255)``), so :func:`decode_mask` returns it within ``1/510``.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

MASK_LEVELS = 255  # 8-bit grey PNG
MASK_QUANTISATION_ERROR = 0.5 / MASK_LEVELS  # largest |decode(encode(m)) - m|
_PNG_COMPRESS_LEVEL = 6  # zlib default: masks are smooth, so this is already compact


def encode_mask(anomaly_map: np.ndarray) -> bytes:
    """Float ``(H, W)`` map in ``[0, 1]`` -> 8-bit greyscale PNG bytes.

    Values outside ``[0, 1]`` are clipped.

    Raises:
        ValueError: if the map is not 2-D or holds NaN / infinite values.
    """
    values = np.asarray(anomaly_map, dtype=np.float64)
    if values.ndim != 2 or 0 in values.shape:
        raise ValueError(f"anomaly map must be a non-empty (H, W) array, got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("anomaly map holds NaN or infinite values")
    levels = np.rint(np.clip(values, 0.0, 1.0) * MASK_LEVELS).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(levels).save(buffer, format="PNG", compress_level=_PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def decode_mask(png: bytes) -> np.ndarray:
    """PNG bytes from :func:`encode_mask` -> float32 ``(H, W)`` map in ``[0, 1]``."""
    with Image.open(io.BytesIO(png)) as image:
        levels = np.asarray(image.convert("L"), dtype=np.float32)
    return levels / np.float32(MASK_LEVELS)
