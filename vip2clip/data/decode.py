"""Bytes -> PIL image: the one place where every bad-input decision is made.

Every failure raises :class:`~vip2clip.errors.ImageDecodeError` whose ``reason``
is one of :data:`ERROR_REASONS` (stable codes stored in the results'
``error_reason`` column), so a bad object becomes an error row, never a crash.

Policies (documented in ``docs/results-schema.md``):

* The pixel limit is checked from the header *before* pixels are decoded;
  Pillow's global ``Image.MAX_IMAGE_PIXELS`` is left untouched (Pillow itself
  still refuses images above twice that limit at ``open``: also reported as
  ``decompression_bomb``).
* Images are fully decoded here (``load()``), so truncation is detected here.
* EXIF orientation is applied (the image is returned as a viewer shows it);
  sizes and bounding boxes in the results refer to that orientation. A
  malformed EXIF block is ignored rather than failing the image.
* Modes the model preprocessing resizes faithfully (``1, L, LA, P, PA, RGB,
  RGBA, CMYK, YCbCr``) are returned unchanged: the official transform resizes
  in the image's own mode. 16/32-bit integer greys are scaled to 8-bit ``L``
  (value // 257 after clipping to 0..65535); float greys are clipped to 0..255.
  Other modes are converted to RGB. Alpha is not composited; the
  preprocessing drops it, as the reference implementation does.
* Multi-frame images (GIF, TIFF, ...) use their first frame.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vip2clip.errors import ImageDecodeError

MAX_IMAGE_PIXELS_DEFAULT = 100_000_000  # ~10k x 10k: far above any camera frame, bounded RAM
MIN_IMAGE_SIDE_DEFAULT = 14  # one ViT-L/14 patch; smaller images carry no patch structure
MAX_ASPECT_RATIO_DEFAULT = 64.0  # long side / short side; line-scan strips stay well below

# Stable reason codes of ``error_reason``. Decoding raises the first group; the
# scoring pipeline uses the second for failures around decoding.
EMPTY_OBJECT = "empty_object"
NOT_AN_IMAGE = "not_an_image"
UNSUPPORTED_FORMAT = "unsupported_format"
TRUNCATED_IMAGE = "truncated_image"
CORRUPT_IMAGE = "corrupt_image"
DECOMPRESSION_BOMB = "decompression_bomb"
IMAGE_TOO_SMALL = "image_too_small"
EXTREME_ASPECT_RATIO = "extreme_aspect_ratio"
OBJECT_MISSING = "object_missing"
PERMISSION_DENIED = "permission_denied"
READ_FAILED = "read_failed"
INFERENCE_FAILED = "inference_failed"
# The read stage refuses these before any byte is held; the same entry fails the
# same way every night, so they are permanent (not in TRANSIENT_REASONS).
TOO_LARGE = "too_large"
NOT_A_FILE = "not_a_file"
NAME_TOO_LONG = "name_too_long"
UNSUPPORTED_URI = "unsupported_uri"

DECODE_REASONS: frozenset[str] = frozenset(
    {
        EMPTY_OBJECT,
        NOT_AN_IMAGE,
        UNSUPPORTED_FORMAT,
        TRUNCATED_IMAGE,
        CORRUPT_IMAGE,
        DECOMPRESSION_BOMB,
        IMAGE_TOO_SMALL,
        EXTREME_ASPECT_RATIO,
    }
)
REFUSED_READ_REASONS: frozenset[str] = frozenset(
    {TOO_LARGE, NOT_A_FILE, NAME_TOO_LONG, UNSUPPORTED_URI}
)
ERROR_REASONS: frozenset[str] = (
    DECODE_REASONS
    | REFUSED_READ_REASONS
    | {OBJECT_MISSING, PERMISSION_DENIED, READ_FAILED, INFERENCE_FAILED}
)
# Failures that may not recur: incremental runs retry objects that failed this way.
TRANSIENT_REASONS: frozenset[str] = frozenset(
    {OBJECT_MISSING, PERMISSION_DENIED, READ_FAILED, INFERENCE_FAILED}
)

# Modes returned as they are: the model preprocessing resizes them in their own mode.
PASSTHROUGH_MODES = frozenset({"1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"})
EXIF_ORIENTATION_TAG = 0x0112  # EXIF 2.3, "Orientation"
EXIF_UPRIGHT = 1
_INT_GREY_MODES = frozenset({"I", "I;16", "I;16L", "I;16B", "I;16N"})
_UINT16_MAX = 65535
_UINT16_TO_UINT8 = 257  # 65535 / 255
_UINT8_MAX = 255
_TRUNCATION_MARKERS = ("truncated", "not enough data", "incomplete")
# Signatures of formats we expect; content starting with one that Pillow cannot open
# is a corrupt image rather than "not an image".
IMAGE_SIGNATURES: tuple[bytes, ...] = (
    b"\xff\xd8\xff",  # JPEG
    b"\x89PNG\r\n\x1a\n",  # PNG
    b"GIF87a",
    b"GIF89a",
    b"II*\x00",  # TIFF, little-endian
    b"MM\x00*",  # TIFF, big-endian
)
_RIFF, _WEBP, _WEBP_OFFSET = b"RIFF", b"WEBP", 8
_DETAIL_MAX_CHARS = 300


def decode_image(
    data: bytes,
    *,
    max_pixels: int = MAX_IMAGE_PIXELS_DEFAULT,
    min_side: int = MIN_IMAGE_SIDE_DEFAULT,
    max_aspect_ratio: float = MAX_ASPECT_RATIO_DEFAULT,
) -> Image.Image:
    """Decode encoded image bytes into a fully loaded PIL image, or raise a typed reason.

    Raises:
        ImageDecodeError: with ``reason`` in :data:`DECODE_REASONS`.
    """
    if not data:
        raise ImageDecodeError(EMPTY_OBJECT, "the object has zero bytes")
    with warnings.catch_warnings():
        # We enforce our own pixel limit; Pillow's warning below its hard limit is noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = _open(data)
        _check_geometry(image.size, max_pixels, min_side, max_aspect_ratio)
        _load(image)
    image = _apply_orientation(image)
    return _normalise_mode(image)


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(DECOMPRESSION_BOMB, _detail(exc)) from None
    except UnidentifiedImageError:
        if _has_image_signature(data):
            raise ImageDecodeError(
                CORRUPT_IMAGE, "image signature present but the header cannot be parsed"
            ) from None
        raise ImageDecodeError(NOT_AN_IMAGE, "content is not in any known image format") from None
    except Exception as exc:  # Pillow raises many types for a corrupt header
        raise ImageDecodeError(CORRUPT_IMAGE, f"bad image header ({_detail(exc)})") from None


def _has_image_signature(data: bytes) -> bool:
    if data.startswith(IMAGE_SIGNATURES):
        return True
    return data.startswith(_RIFF) and data[_WEBP_OFFSET : _WEBP_OFFSET + len(_WEBP)] == _WEBP


def _check_geometry(
    size: tuple[int, int], max_pixels: int, min_side: int, max_aspect_ratio: float
) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageDecodeError(CORRUPT_IMAGE, f"header declares a {width}x{height} image")
    if width * height > max_pixels:
        raise ImageDecodeError(
            DECOMPRESSION_BOMB, f"{width}x{height} = {width * height} pixels > limit {max_pixels}"
        )
    if max(width, height) / min(width, height) > max_aspect_ratio:
        raise ImageDecodeError(
            EXTREME_ASPECT_RATIO, f"{width}x{height} exceeds aspect ratio {max_aspect_ratio:g}:1"
        )
    if min(width, height) < min_side:
        raise ImageDecodeError(
            IMAGE_TOO_SMALL, f"{width}x{height} has a side below {min_side} pixels"
        )


def _load(image: Image.Image) -> None:
    try:
        image.load()
    except Image.DecompressionBombError as exc:
        raise ImageDecodeError(DECOMPRESSION_BOMB, _detail(exc)) from None
    except (OSError, SyntaxError, EOFError, ValueError) as exc:
        message = str(exc).lower()
        if isinstance(exc, EOFError) or any(m in message for m in _TRUNCATION_MARKERS):
            raise ImageDecodeError(TRUNCATED_IMAGE, _detail(exc)) from None
        if "decoder" in message and "not available" in message:
            raise ImageDecodeError(UNSUPPORTED_FORMAT, _detail(exc)) from None
        raise ImageDecodeError(CORRUPT_IMAGE, _detail(exc)) from None
    except MemoryError:
        raise ImageDecodeError(DECOMPRESSION_BOMB, "out of memory while decoding") from None
    except Exception as exc:  # zlib.error, struct.error and friends from decoders
        raise ImageDecodeError(CORRUPT_IMAGE, _detail(exc)) from None


def _apply_orientation(image: Image.Image) -> Image.Image:
    try:
        if image.getexif().get(EXIF_ORIENTATION_TAG, EXIF_UPRIGHT) == EXIF_UPRIGHT:
            return image  # the common case: no copy
        oriented = ImageOps.exif_transpose(image)
    except Exception:  # a malformed EXIF block must not fail an otherwise good image
        return image
    return oriented if oriented is not None else image


def _normalise_mode(image: Image.Image) -> Image.Image:
    if image.mode in PASSTHROUGH_MODES:
        return image
    if image.mode in _INT_GREY_MODES:
        grey = np.asarray(image, dtype=np.int64)
        scaled = np.clip(grey, 0, _UINT16_MAX) // _UINT16_TO_UINT8
        return Image.fromarray(scaled.astype(np.uint8))
    if image.mode == "F":
        grey = np.nan_to_num(np.asarray(image, dtype=np.float32))
        return Image.fromarray(np.clip(grey, 0, _UINT8_MAX).astype(np.uint8))
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as exc:
        raise ImageDecodeError(
            UNSUPPORTED_FORMAT, f"mode {image.mode!r} cannot be converted ({_detail(exc)})"
        ) from None


def _detail(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:_DETAIL_MAX_CHARS]
