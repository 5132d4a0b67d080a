"""One entry point for every layout: :func:`iter_samples`."""

from __future__ import annotations

from collections.abc import Iterator

from vip2clip.data.datasets.folder import iter_folder
from vip2clip.data.datasets.indexed import iter_meta, iter_visa
from vip2clip.data.datasets.mvtec import iter_mvtec
from vip2clip.data.datasets.spec import DatasetSpec, Sample, SkippedEntries
from vip2clip.data.datasets.tree import DatasetTree
from vip2clip.errors import DatasetError
from vip2clip.storage import StorageConfig


def iter_samples(
    spec: DatasetSpec,
    storage: StorageConfig | None = None,
    report: SkippedEntries | None = None,
) -> Iterator[Sample]:
    """Stream the samples of a dataset split, class by class, without reading any image.

    Entries whose files are missing raise :class:`~vip2clip.errors.DatasetError`
    naming them, or (``on_bad_entry="skip"``) are left out and recorded in ``report``.
    Raises ``DatasetError`` if the layout is wrong or the split has no sample at all.
    """
    storage = storage or StorageConfig()
    tree = DatasetTree(spec.uri, storage)
    if spec.format == "mvtec":
        samples = iter_mvtec(spec, tree, report)
    elif spec.format == "visa":
        samples = iter_visa(spec, tree, report, storage)
    elif spec.format == "meta":
        samples = iter_meta(spec, tree, report, storage)
    else:
        samples = iter_folder(spec, tree, report)
    count = 0
    for sample in samples:
        count += 1
        yield sample
    if count == 0:
        raise DatasetError(
            f"no {spec.split} samples in {spec.uri} ({spec.format} layout"
            + (f", classes {', '.join(spec.classes)})" if spec.classes else ")")
        )


def list_samples(
    spec: DatasetSpec,
    storage: StorageConfig | None = None,
    report: SkippedEntries | None = None,
) -> list[Sample]:
    """All samples of :func:`iter_samples` as a list."""
    return list(iter_samples(spec, storage, report))
