"""What a dataset is (its spec), what one entry is (a sample), and how bad entries are handled."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import Field

from vip2clip.config import FrozenConfig
from vip2clip.errors import DatasetError
from vip2clip.storage import SafeUri

log = logging.getLogger(__name__)

DatasetFormat = Literal["mvtec", "visa", "meta", "folder"]
Split = Literal["train", "test"]
BadEntryPolicy = Literal["error", "skip"]

NORMAL = 0
ANOMALOUS = 1
GOOD_DEFECT = "good"  # MVTec AD name of the defect-free folder; defect type of normal samples
UNKNOWN_DEFECT = "anomaly"  # defect type of anomalous samples whose layout names none
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

# Stable reason codes of bad entries (for counting and for the error message).
MISSING_IMAGE = "missing_image"
MISSING_MASK = "missing_mask"
UNREADABLE_IMAGE = "unreadable_image"
UNREADABLE_MASK = "unreadable_mask"
MASK_SIZE_MISMATCH = "mask_size_mismatch"
INVALID_RECORD = "invalid_record"


class DatasetSpec(FrozenConfig):
    """Where a labelled dataset lives, in which layout, and which part of it to read."""

    uri: SafeUri = Field(description="dataset root: local path or s3:// URI")
    format: DatasetFormat = Field(default="mvtec", description="layout of the files under uri")
    split: Split = Field(default="test", description="train or test part")
    classes: tuple[str, ...] | None = Field(
        default=None, description="classes to read (default: all, in sorted order)"
    )
    on_bad_entry: BadEntryPolicy = Field(
        default="error", description="error: stop at the first bad entry; skip: count and go on"
    )
    index_file: str | None = Field(
        default=None,
        description="visa: split CSV (default split_csv/1cls.csv); meta: JSON (default meta.json)",
    )
    normal_dir: str = Field(default="normal", description="folder layout: normal images")
    anomalous_dir: str = Field(default="anomalous", description="folder layout: anomalous images")
    masks_dir: str = Field(default="masks", description="folder layout: masks (optional)")
    extensions: tuple[str, ...] = Field(
        default=IMAGE_EXTENSIONS, description="file name endings of images (case-insensitive)"
    )


@dataclass(frozen=True, slots=True)
class Sample:
    """One labelled image of a dataset; nothing is read until :func:`load_sample`."""

    image_uri: str
    mask_uri: str | None
    label: int  # 0 normal, 1 anomalous
    class_name: str
    defect_type: str

    def as_row(self) -> dict[str, Any]:
        """Plain dict (e.g. for ``ray.data.from_items``)."""
        return asdict(self)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Sample:
        """Inverse of :meth:`as_row`; extra keys (e.g. added by a pipeline) are ignored."""
        mask = row.get("mask_uri")
        return cls(
            image_uri=str(row["image_uri"]),
            mask_uri=str(mask) if mask else None,
            label=int(row["label"]),
            class_name=str(row["class_name"]),
            defect_type=str(row["defect_type"]),
        )


class BadEntryError(DatasetError):
    """One entry of a dataset is unusable; ``reason`` is one of the stable codes above."""

    def __init__(self, entry: str, reason: str, detail: str) -> None:
        super().__init__(
            f"bad dataset entry {entry} ({reason}): {detail}; fix or remove it, "
            "or set on_bad_entry=skip to skip such entries"
        )
        self.entry = entry
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SkippedEntry:
    """One entry left out of a dataset, and why."""

    entry: str
    reason: str
    detail: str


@dataclass
class SkippedEntries:
    """Report of the entries skipped while reading a dataset with ``on_bad_entry=skip``."""

    entries: list[SkippedEntry] = field(default_factory=list)

    @property
    def count(self) -> int:
        """Number of skipped entries."""
        return len(self.entries)

    def by_reason(self) -> dict[str, int]:
        """Number of skipped entries per reason code."""
        return dict(Counter(e.reason for e in self.entries))

    def add(self, error: BadEntryError) -> None:
        """Record one skipped entry."""
        self.entries.append(SkippedEntry(error.entry, error.reason, error.detail))

    def summary(self) -> str:
        """One line for logs and console output."""
        if not self.entries:
            return "no entries skipped"
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.by_reason().items()))
        return f"{self.count} entries skipped ({reasons})"


def handle_bad_entry(
    error: BadEntryError, policy: BadEntryPolicy, report: SkippedEntries | None
) -> None:
    """Raise ``error`` under the ``error`` policy; otherwise record it and log a warning."""
    if policy == "error":
        raise error
    log.warning("skipping %s", error)
    if report is not None:
        report.add(error)


def select_classes(spec: DatasetSpec, available: list[str], where: str) -> list[str]:
    """The classes to read: all ``available`` ones, or the requested ones (all must exist)."""
    if spec.classes is None:
        return sorted(available)
    missing = [c for c in spec.classes if c not in available]
    if missing:
        raise DatasetError(
            f"classes {', '.join(missing)} not found in {where}; "
            f"available: {', '.join(sorted(available)) or 'none'}"
        )
    return list(spec.classes)
