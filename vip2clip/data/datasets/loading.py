"""Reading a sample's image and mask into model inputs and training targets."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from io import BytesIO

import torch
from PIL import Image

from vip2clip.data.datasets.spec import (
    MASK_SIZE_MISMATCH,
    MISSING_IMAGE,
    MISSING_MASK,
    UNREADABLE_IMAGE,
    UNREADABLE_MASK,
    BadEntryError,
    DatasetSpec,
    Sample,
    SkippedEntries,
    handle_bad_entry,
)
from vip2clip.data.masks import empty_mask, mask_to_tensor
from vip2clip.data.preprocess import preprocess_image
from vip2clip.errors import StorageError
from vip2clip.storage import StorageConfig, read_bytes

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


@dataclass(frozen=True, slots=True)
class LoadedSample:
    """A sample with its model input ``pixels`` (3, S, S) and binary ``mask`` (S, S)."""

    sample: Sample
    pixels: torch.Tensor
    mask: torch.Tensor


def load_sample(
    sample: Sample, image_size: int, storage: StorageConfig | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Read and preprocess one sample: pixels ``(3, S, S)`` float32, mask ``(S, S)`` in {0, 1}.

    Raises :class:`BadEntryError` (a ``DatasetError``) naming the entry when the
    image or mask is missing or unreadable, or when their sizes differ.
    """
    image = _open(sample.image_uri, sample, MISSING_IMAGE, UNREADABLE_IMAGE, storage)
    pixels = preprocess_image(image, image_size)
    if sample.mask_uri is None:
        return pixels, empty_mask(image_size)
    mask_image = _open(sample.mask_uri, sample, MISSING_MASK, UNREADABLE_MASK, storage)
    if mask_image.size != image.size:
        raise BadEntryError(
            sample.image_uri,
            MASK_SIZE_MISMATCH,
            f"image is {image.size[0]}x{image.size[1]} but mask {sample.mask_uri} is "
            f"{mask_image.size[0]}x{mask_image.size[1]}",
        )
    return pixels, mask_to_tensor(mask_image, image_size)


def iter_loaded(
    samples: Iterator[Sample] | list[Sample],
    spec: DatasetSpec,
    image_size: int,
    storage: StorageConfig | None = None,
    report: SkippedEntries | None = None,
) -> Iterator[LoadedSample]:
    """Load ``samples`` one by one; bad ones raise or are skipped per ``spec.on_bad_entry``."""
    for sample in samples:
        try:
            pixels, mask = load_sample(sample, image_size, storage)
        except BadEntryError as error:
            handle_bad_entry(error, spec.on_bad_entry, report)
            continue
        yield LoadedSample(sample, pixels, mask)


def _open(
    uri: str,
    sample: Sample,
    missing: str,
    unreadable: str,
    storage: StorageConfig | None,
) -> Image.Image:
    try:
        data = read_bytes(uri, storage)
    except StorageError as exc:
        raise BadEntryError(sample.image_uri, missing, str(exc)) from None
    try:
        image = Image.open(BytesIO(data))
        image.load()  # decode now, so truncated files fail here
    except _DECODE_ERRORS as exc:
        raise BadEntryError(sample.image_uri, unreadable, f"{uri}: {exc}") from None
    return image
