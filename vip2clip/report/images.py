"""Report pictures: heat-map overlays, mask thumbnails, and data URIs to embed them."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from vip2clip.data.decode import decode_image
from vip2clip.errors import ImageDecodeError, StorageError
from vip2clip.results import decode_mask
from vip2clip.storage import StorageConfig, read_bytes

THUMBNAIL_SIDE = 256  # longest side of report pictures, in pixels
OVERLAY_ALPHA = 0.5  # weight of the heat map over the image
JPEG_QUALITY = 85  # overlays are photos: JPEG keeps the HTML small
BBOX_COLOUR = (255, 255, 255)
BBOX_WIDTH = 2
# A "jet"-like colour scale: (position in [0, 1], RGB in [0, 1]); low = dark blue, high = red.
HEATMAP_STOPS: tuple[tuple[float, tuple[float, float, float]], ...] = (
    (0.0, (0.0, 0.0, 0.5)),
    (0.125, (0.0, 0.0, 1.0)),
    (0.375, (0.0, 1.0, 1.0)),
    (0.625, (1.0, 1.0, 0.0)),
    (0.875, (1.0, 0.0, 0.0)),
    (1.0, (0.5, 0.0, 0.0)),
)


@dataclass(frozen=True)
class Pictures:
    """Data URIs of one anomaly's pictures; ``overlay`` is None when the source is gone."""

    overlay: str | None
    mask: str | None
    source_problem: str | None  # why the source image could not be shown


def heatmap(values: np.ndarray) -> np.ndarray:
    """Float ``(H, W)`` in ``[0, 1]`` -> uint8 RGB ``(H, W, 3)`` on :data:`HEATMAP_STOPS`."""
    clipped = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    positions = [p for p, _ in HEATMAP_STOPS]
    channels = [
        np.interp(clipped, positions, [rgb[c] for _, rgb in HEATMAP_STOPS]) for c in range(3)
    ]
    return np.rint(np.stack(channels, axis=-1) * 255).astype(np.uint8)


def thumbnail_size(size: tuple[int, int], side: int = THUMBNAIL_SIDE) -> tuple[int, int]:
    """``(width, height)`` scaled so the longest side is at most ``side`` (never upscaled)."""
    width, height = size
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def mask_picture(anomaly_map: np.ndarray, size: tuple[int, int]) -> Image.Image:
    """The colour-mapped anomaly map resized to ``size`` (the map covers the whole image)."""
    resized = Image.fromarray(anomaly_map.astype(np.float32), mode="F").resize(
        size, Image.Resampling.BILINEAR
    )
    return Image.fromarray(heatmap(np.asarray(resized)))


def overlay_picture(
    image: Image.Image,
    anomaly_map: np.ndarray,
    bbox: tuple[int, int, int, int] | None = None,
    side: int = THUMBNAIL_SIDE,
) -> Image.Image:
    """``image`` thumbnail with the heat map blended in and the largest region outlined.

    ``bbox`` is in the image's original pixel coordinates (half-open).
    """
    size = thumbnail_size(image.size, side)
    base = image.convert("RGB").resize(size, Image.Resampling.BILINEAR)
    heat = mask_picture(anomaly_map, size)
    blended = Image.blend(base, heat, OVERLAY_ALPHA)
    if bbox is not None:
        sx, sy = size[0] / image.size[0], size[1] / image.size[1]
        x0, y0, x1, y1 = bbox
        box = (x0 * sx, y0 * sy, max(x0 * sx, x1 * sx - 1), max(y0 * sy, y1 * sy - 1))
        ImageDraw.Draw(blended).rectangle(box, outline=BBOX_COLOUR, width=BBOX_WIDTH)
    return blended


def data_uri(image: Image.Image, image_format: str = "PNG") -> str:
    """``data:image/...;base64,...`` of ``image`` (PNG or JPEG)."""
    buffer = io.BytesIO()
    options = {"quality": JPEG_QUALITY} if image_format == "JPEG" else {}
    image.save(buffer, format=image_format, **options)
    mime = "image/jpeg" if image_format == "JPEG" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def pictures(
    source_uri: str,
    mask_png: bytes | None,
    bbox: tuple[int, int, int, int] | None,
    image_size: tuple[int, int] | None,
    storage: StorageConfig | None = None,
) -> Pictures:
    """Overlay and mask pictures of one scored image.

    A source image that is gone, unreadable or undecodable (deleted since scoring)
    leaves the mask alone; it never fails the report.
    """
    image, problem = load_source(source_uri, storage)
    anomaly_map = _mask_or_none(mask_png)
    if anomaly_map is None:
        overlay = image.convert("RGB").resize(thumbnail_size(image.size)) if image else None
        return Pictures(data_uri(overlay, "JPEG") if overlay else None, None, problem)
    height, width = anomaly_map.shape
    shape = image.size if image else image_size or (width, height)
    mask = data_uri(mask_picture(anomaly_map, thumbnail_size(shape)))
    if image is None:
        return Pictures(None, mask, problem)
    return Pictures(data_uri(overlay_picture(image, anomaly_map, bbox), "JPEG"), mask, None)


def load_source(
    source_uri: str, storage: StorageConfig | None = None
) -> tuple[Image.Image | None, str | None]:
    """The decoded source image, or ``None`` and why it could not be loaded."""
    try:
        return decode_image(read_bytes(source_uri, storage)), None
    except (StorageError, ImageDecodeError) as exc:
        return None, str(exc)


def _mask_or_none(mask_png: bytes | None) -> np.ndarray | None:
    """The stored map, or ``None`` when there is none or it is unreadable."""
    if not mask_png:
        return None
    try:
        return decode_mask(mask_png)
    except (OSError, ValueError):  # a damaged mask must not break the report
        return None
