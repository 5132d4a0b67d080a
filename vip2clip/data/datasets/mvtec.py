"""MVTec AD layout: ``<class>/{train,test}/<defect>/*.png`` and
``<class>/ground_truth/<defect>/<stem>_mask.png``; ``good`` folders hold normal images."""

from __future__ import annotations

from collections.abc import Iterator

from vip2clip.data.datasets.spec import (
    ANOMALOUS,
    GOOD_DEFECT,
    MISSING_MASK,
    NORMAL,
    BadEntryError,
    DatasetSpec,
    Sample,
    SkippedEntries,
    handle_bad_entry,
    select_classes,
)
from vip2clip.data.datasets.tree import DatasetTree, is_image
from vip2clip.errors import DatasetError

SPLITS = ("train", "test")
GROUND_TRUTH_DIR = "ground_truth"
MASK_SUFFIX = "_mask"


def iter_mvtec(
    spec: DatasetSpec, tree: DatasetTree, report: SkippedEntries | None
) -> Iterator[Sample]:
    """Samples of ``spec.split`` for each selected class, in sorted order."""
    available = [c for c in tree.subdirs() if set(tree.subdirs(c)) & set(SPLITS)]
    if not available:
        raise DatasetError(
            f"{tree.uri} holds no MVTec-layout class (no <class>/train or <class>/test folder)"
        )
    for class_name in select_classes(spec, available, tree.uri):
        yield from _class_samples(spec, tree, class_name, report)


def _class_samples(
    spec: DatasetSpec, tree: DatasetTree, class_name: str, report: SkippedEntries | None
) -> Iterator[Sample]:
    split_dir = f"{class_name}/{spec.split}"
    mask_files: frozenset[str] | None = None
    for rel in tree.files(split_dir):
        inner = rel[len(split_dir) + 1 :]
        if "/" not in inner or not is_image(rel, spec.extensions):
            continue  # files directly in the split folder, or not images
        defect, name = inner.split("/", 1)
        if defect == GOOD_DEFECT:
            yield Sample(tree.uri_of(rel), None, NORMAL, class_name, GOOD_DEFECT)
            continue
        if mask_files is None:
            mask_files = frozenset(tree.files(f"{class_name}/{GROUND_TRUTH_DIR}"))
        mask_rel = _find_mask(class_name, defect, name, mask_files, spec.extensions)
        if mask_rel is None:
            error = BadEntryError(
                tree.uri_of(rel),
                MISSING_MASK,
                f"no {GROUND_TRUTH_DIR}/{defect}/{name.rsplit('.', 1)[0]}{MASK_SUFFIX}.png",
            )
            handle_bad_entry(error, spec.on_bad_entry, report)
            continue
        yield Sample(tree.uri_of(rel), tree.uri_of(mask_rel), ANOMALOUS, class_name, defect)


def _find_mask(
    class_name: str,
    defect: str,
    name: str,
    mask_files: frozenset[str],
    extensions: tuple[str, ...],
) -> str | None:
    base = f"{class_name}/{GROUND_TRUTH_DIR}/{defect}/{name.rsplit('.', 1)[0]}{MASK_SUFFIX}"
    for ext in (".png", *extensions):
        for candidate in (base + ext, base + ext.upper()):
            if candidate in mask_files:
                return candidate
    return None
