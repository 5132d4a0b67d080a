"""Generic folder layout: ``normal/`` and ``anomalous/`` image folders and an optional
``masks/`` folder whose files mirror ``anomalous/`` (same relative path and stem, any
image extension, ``_mask`` suffix allowed). Sub-folders of ``anomalous/`` name defect
types. An optional ``train/`` or ``test/`` level selects the split; with ``classes``
set, each class is a sub-folder of the root, otherwise the root is one class named
after its last path component."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator

from vip2clip.data.datasets.spec import (
    ANOMALOUS,
    GOOD_DEFECT,
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
from vip2clip.data.datasets.tree import DatasetTree, is_image
from vip2clip.errors import DatasetError

MASK_SUFFIX = "_mask"


def iter_folder(
    spec: DatasetSpec, tree: DatasetTree, report: SkippedEntries | None
) -> Iterator[Sample]:
    """Normal then anomalous samples of each class folder."""
    if spec.classes is None:
        class_dirs = [("", posixpath.basename(tree.uri.rstrip("/")) or "images")]
    else:
        class_dirs = [(c, c) for c in select_classes(spec, tree.subdirs(), tree.uri)]
    for base, class_name in class_dirs:
        yield from _class_samples(spec, tree, _split_base(spec, tree, base), class_name, report)


def _split_base(spec: DatasetSpec, tree: DatasetTree, base: str) -> str:
    children = tree.subdirs(base)
    if spec.split in children:
        return _join(base, spec.split)
    if spec.normal_dir in children or spec.anomalous_dir in children:
        return base
    raise DatasetError(
        f"{tree.uri_of(base) if base else tree.uri} has neither {spec.split}/ nor "
        f"{spec.normal_dir}/ or {spec.anomalous_dir}/ folders (folder layout)"
    )


def _class_samples(
    spec: DatasetSpec,
    tree: DatasetTree,
    base: str,
    class_name: str,
    report: SkippedEntries | None,
) -> Iterator[Sample]:
    normal_dir = _join(base, spec.normal_dir)
    for rel in tree.files(normal_dir):
        if is_image(rel, spec.extensions):
            yield Sample(tree.uri_of(rel), None, NORMAL, class_name, GOOD_DEFECT)
    masks_dir = _join(base, spec.masks_dir)
    has_masks = spec.masks_dir in tree.subdirs(base)
    masks = _mask_index(tree.files(masks_dir), masks_dir, spec) if has_masks else {}
    anomalous_dir = _join(base, spec.anomalous_dir)
    for rel in tree.files(anomalous_dir):
        if not is_image(rel, spec.extensions):
            continue
        inner = rel[len(anomalous_dir) + 1 :]
        defect = inner.split("/", 1)[0] if "/" in inner else UNKNOWN_DEFECT
        mask = masks.get(posixpath.splitext(inner)[0])
        if has_masks and mask is None:
            error = BadEntryError(tree.uri_of(rel), MISSING_MASK, f"no mask for it in {masks_dir}/")
            handle_bad_entry(error, spec.on_bad_entry, report)
            continue
        mask_uri = tree.uri_of(mask) if mask else None
        yield Sample(tree.uri_of(rel), mask_uri, ANOMALOUS, class_name, defect)


def _mask_index(files: list[str], masks_dir: str, spec: DatasetSpec) -> dict[str, str]:
    """Relative stem of the image it belongs to (``scratch/000``) -> mask path."""
    index: dict[str, str] = {}
    for rel in files:
        if not is_image(rel, spec.extensions):
            continue
        key = posixpath.splitext(rel[len(masks_dir) + 1 :])[0]
        key = key.removesuffix(MASK_SUFFIX)
        index.setdefault(key, rel)
    return index


def _join(base: str, name: str) -> str:
    return f"{base}/{name}" if base else name
