"""Layouts with an index file that lists every entry: VisA's split CSV and the
AnomalyCLIP / ViP²-CLIP ``meta.json``. Paths in both are relative to the root."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from vip2clip.data.datasets.spec import (
    ANOMALOUS,
    GOOD_DEFECT,
    INVALID_RECORD,
    MISSING_IMAGE,
    MISSING_MASK,
    NORMAL,
    UNKNOWN_DEFECT,
    BadEntryError,
    DatasetSpec,
    Sample,
    SkippedEntries,
    handle_bad_entry,
    select_classes,
)
from vip2clip.data.datasets.tree import DatasetTree, normalize_rel
from vip2clip.errors import DatasetError, StorageError
from vip2clip.storage import StorageConfig, read_bytes

VISA_INDEX = "split_csv/1cls.csv"
VISA_COLUMNS = ("object", "split", "label", "image", "mask")
VISA_LABELS = {"normal": NORMAL, "anomaly": ANOMALOUS, "0": NORMAL, "1": ANOMALOUS}
META_INDEX = "meta.json"
META_KEYS = ("img_path", "mask_path", "cls_name", "specie_name", "anomaly")


@dataclass(frozen=True, slots=True)
class IndexRecord:
    """One entry as an index file states it (paths relative to the root)."""

    image: str
    mask: str
    label: int
    class_name: str
    defect_type: str


def iter_visa(
    spec: DatasetSpec, tree: DatasetTree, report: SkippedEntries | None, storage: StorageConfig
) -> Iterator[Sample]:
    """Samples listed in VisA's split CSV (columns object,split,label,image,mask)."""
    index = spec.index_file or VISA_INDEX
    rows = list(csv.DictReader(io.StringIO(_read_index(tree, index, storage))))
    if rows and not set(VISA_COLUMNS) <= set(rows[0]):
        raise DatasetError(f"{tree.uri_of(index)} must have the columns {','.join(VISA_COLUMNS)}")
    by_class: dict[str, list[dict[str, str]]] = {}
    for row in rows:
        by_class.setdefault(row["object"], []).append(row)
    for class_name in select_classes(spec, list(by_class), tree.uri_of(index)):
        for line, row in enumerate(by_class[class_name]):
            if row["split"] != spec.split:
                continue
            record = _visa_record(row, tree.uri_of(index), line, spec, report)
            if record is not None:
                yield from _checked(record, spec, tree, report)


def iter_meta(
    spec: DatasetSpec, tree: DatasetTree, report: SkippedEntries | None, storage: StorageConfig
) -> Iterator[Sample]:
    """Samples listed in a ``meta.json``: ``{split: {class: [record, ...]}}``."""
    index = spec.index_file or META_INDEX
    try:
        meta = json.loads(_read_index(tree, index, storage))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{tree.uri_of(index)} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict) or not isinstance(meta.get(spec.split), dict):
        raise DatasetError(f"{tree.uri_of(index)} has no {spec.split!r} section of classes")
    classes: dict[str, Any] = meta[spec.split]
    for class_name in select_classes(spec, list(classes), tree.uri_of(index)):
        for position, item in enumerate(classes[class_name]):
            where = f"{tree.uri_of(index)}[{spec.split}][{class_name}][{position}]"
            record = _meta_record(item, class_name, where, spec, report)
            if record is not None:
                yield from _checked(record, spec, tree, report)


def _read_index(tree: DatasetTree, index: str, storage: StorageConfig) -> str:
    try:
        return read_bytes(tree.uri_of(index), storage).decode("utf-8-sig")
    except StorageError as exc:
        raise DatasetError(f"cannot read the dataset index: {exc}") from None
    except UnicodeDecodeError:
        raise DatasetError(f"{tree.uri_of(index)} is not UTF-8 text") from None


def _visa_record(
    row: dict[str, str],
    where: str,
    line: int,
    spec: DatasetSpec,
    report: SkippedEntries | None,
) -> IndexRecord | None:
    label = VISA_LABELS.get((row["label"] or "").strip().lower())
    if label is None or not row["image"]:
        error = BadEntryError(f"{where} row {line} of {row['object']}", INVALID_RECORD, str(row))
        handle_bad_entry(error, spec.on_bad_entry, report)
        return None
    defect = GOOD_DEFECT if label == NORMAL else UNKNOWN_DEFECT
    return IndexRecord(row["image"], row["mask"] or "", label, row["object"], defect)


def _meta_record(
    item: Any, class_name: str, where: str, spec: DatasetSpec, report: SkippedEntries | None
) -> IndexRecord | None:
    anomaly = item.get("anomaly") if isinstance(item, dict) else None
    if not isinstance(item, dict) or not item.get("img_path") or anomaly not in (0, 1):
        error = BadEntryError(
            where, INVALID_RECORD, f"expected keys {', '.join(META_KEYS)}, anomaly 0 or 1"
        )
        handle_bad_entry(error, spec.on_bad_entry, report)
        return None
    label = ANOMALOUS if anomaly else NORMAL
    defect = str(item.get("specie_name") or (GOOD_DEFECT if label == NORMAL else UNKNOWN_DEFECT))
    return IndexRecord(
        str(item["img_path"]),
        str(item.get("mask_path") or ""),
        label,
        str(item.get("cls_name") or class_name),
        defect,
    )


def _checked(
    record: IndexRecord, spec: DatasetSpec, tree: DatasetTree, report: SkippedEntries | None
) -> Iterator[Sample]:
    """The record as a sample if its files exist; normal samples never carry a mask
    and an anomalous one without a mask path gets an all-zero mask, as officially."""
    image = normalize_rel(record.image)
    mask = normalize_rel(record.mask) if record.label == ANOMALOUS else ""
    if not tree.exists(image):
        error = BadEntryError(tree.uri_of(image), MISSING_IMAGE, "listed but not found")
        handle_bad_entry(error, spec.on_bad_entry, report)
        return
    if mask and not tree.exists(mask):
        error = BadEntryError(tree.uri_of(image), MISSING_MASK, f"{tree.uri_of(mask)} not found")
        handle_bad_entry(error, spec.on_bad_entry, report)
        return
    mask_uri = tree.uri_of(mask) if mask else None
    yield Sample(tree.uri_of(image), mask_uri, record.label, record.class_name, record.defect_type)
