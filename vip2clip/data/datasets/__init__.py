"""Labelled anomaly-detection datasets: MVTec AD, VisA, AnomalyCLIP ``meta.json``, folders.

>>> from vip2clip.data.datasets import DatasetSpec, iter_samples, load_sample
>>> spec = DatasetSpec(uri="s3://bucket/mvtec", format="mvtec", split="test")  # doctest: +SKIP
>>> for sample in iter_samples(spec):  # doctest: +SKIP
...     pixels, mask = load_sample(sample, image_size=518)

Listing reads no image; :func:`load_sample` reads one sample's image and mask.
"""

from vip2clip.data.datasets.loading import LoadedSample, iter_loaded, load_sample
from vip2clip.data.datasets.reader import iter_samples, list_samples
from vip2clip.data.datasets.spec import (
    ANOMALOUS,
    GOOD_DEFECT,
    IMAGE_EXTENSIONS,
    NORMAL,
    BadEntryError,
    BadEntryPolicy,
    DatasetFormat,
    DatasetSpec,
    Sample,
    SkippedEntries,
    SkippedEntry,
    handle_bad_entry,
)

__all__ = [
    "ANOMALOUS",
    "GOOD_DEFECT",
    "IMAGE_EXTENSIONS",
    "NORMAL",
    "BadEntryError",
    "BadEntryPolicy",
    "DatasetFormat",
    "DatasetSpec",
    "LoadedSample",
    "Sample",
    "SkippedEntries",
    "SkippedEntry",
    "handle_bad_entry",
    "iter_loaded",
    "iter_samples",
    "list_samples",
    "load_sample",
]
