"""Training data as a Ray Dataset: sample rows listed on the driver, pixels loaded by tasks.

Rows that reach the workers hold ``image_uri`` (the cache key's sample part), ``label``,
``mask`` ``(S, S)`` uint8 in {0, 1} and ``pixels`` ``(3, S, S)`` float32 from the one
model-input preprocessing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from vip2clip.data.datasets import BadEntryError, DatasetSpec, Sample, iter_samples, load_sample
from vip2clip.data.datasets.spec import BadEntryPolicy, handle_bad_entry
from vip2clip.errors import DatasetError
from vip2clip.storage import StorageConfig

if TYPE_CHECKING:
    import ray.data

ROW_IMAGE_URI = "image_uri"
ROW_LABEL = "label"
ROW_MASK = "mask"
ROW_PIXELS = "pixels"
MAX_BLOCKS = 256  # enough for an even split over many workers, few enough to stay cheap


def list_samples(spec: DatasetSpec, storage: StorageConfig) -> list[dict[str, Any]]:
    """The dataset's samples as plain rows, in the reader's (sorted, stable) order."""
    rows = [sample.as_row() for sample in iter_samples(spec, storage)]
    if not rows:
        raise DatasetError(f"no {spec.split} samples found in {spec.uri} ({spec.format} layout)")
    return rows


class LoadPixels:
    """Ray Data ``flat_map`` function: one sample row -> pixels, mask and label (no row for
    an unreadable entry when the dataset's policy is ``skip``; an error otherwise)."""

    def __init__(self, image_size: int, storage: StorageConfig, policy: BadEntryPolicy) -> None:
        self.image_size = image_size
        self.storage = storage
        self.policy = policy

    def __call__(self, row: dict[str, Any]) -> list[dict[str, Any]]:
        sample = Sample.from_row(row)
        try:
            pixels, mask = load_sample(sample, self.image_size, self.storage)
        except BadEntryError as exc:
            handle_bad_entry(exc, self.policy, None)
            return []
        return [
            {
                ROW_IMAGE_URI: sample.image_uri,
                ROW_LABEL: sample.label,
                ROW_MASK: mask.numpy().astype(np.uint8),
                ROW_PIXELS: pixels.numpy(),
            }
        ]


def training_dataset(
    rows: list[dict[str, Any]],
    image_size: int,
    storage: StorageConfig,
    policy: BadEntryPolicy = "error",
) -> ray.data.Dataset:
    """A Ray Dataset loading ``rows`` lazily, in small blocks (a fine-grained, even split)."""
    import ray.data

    blocks = max(1, min(len(rows), MAX_BLOCKS))
    dataset = ray.data.from_items(rows, override_num_blocks=blocks)
    return dataset.flat_map(LoadPixels(image_size, storage, policy))
