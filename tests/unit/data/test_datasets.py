"""Dataset readers on generated trees in every layout, and their handling of bad entries."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from tests.fixtures.datasets import DatasetFactory
from vip2clip.data.datasets import (
    DatasetSpec,
    Sample,
    SkippedEntries,
    iter_loaded,
    iter_samples,
    list_samples,
    load_sample,
)
from vip2clip.data.masks import mask_to_tensor
from vip2clip.data.preprocess import preprocess_image
from vip2clip.errors import DatasetError

DOMAINS = ("wood", "pills")
COUNTS = {"n_train_good": 3, "n_test_good": 2, "n_test_bad": 6}
SIZE = 48
LAYOUTS = ("mvtec", "meta", "visa", "folder")


def _make(factory: DatasetFactory, layout: str = "mvtec") -> Path:
    return factory(domains=DOMAINS, image_size=SIZE, seed=5, layout=layout, **COUNTS)


def _copy(factory: DatasetFactory, tmp_path: Path, layout: str = "mvtec") -> Path:
    """A private copy that a test may damage."""
    return Path(shutil.copytree(_make(factory, layout), tmp_path / layout))


def _spec(root: Path, layout: str, **kwargs: Any) -> DatasetSpec:
    if layout == "folder":
        kwargs.setdefault("classes", DOMAINS)
    return DatasetSpec(uri=str(root), format=layout, **kwargs)  # type: ignore[arg-type]


def _digest(uri: str) -> str:
    return hashlib.sha256(Path(uri).read_bytes()).hexdigest()


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("split", ["train", "test"])
def test_every_layout_lists_the_same_samples(
    synthetic_dataset_factory: DatasetFactory, layout: str, split: str
) -> None:
    reference = list_samples(_spec(_make(synthetic_dataset_factory), "mvtec", split=split))
    samples = list_samples(_spec(_make(synthetic_dataset_factory, layout), layout, split=split))

    def content(items: list[Sample]) -> Counter[tuple[str, int, str, str | None]]:
        return Counter(
            (s.class_name, s.label, _digest(s.image_uri), s.mask_uri and _digest(s.mask_uri))
            for s in items
        )

    assert content(samples) == content(reference)
    per_class = COUNTS["n_train_good"] if split == "train" else COUNTS["n_test_good"] + 6
    assert Counter(s.class_name for s in samples) == dict.fromkeys(DOMAINS, per_class)


def test_mvtec_labels_defects_and_masks(synthetic_dataset_factory: DatasetFactory) -> None:
    root = _make(synthetic_dataset_factory)
    samples = list_samples(_spec(root, "mvtec", split="test"))
    assert [s.class_name for s in samples] == sorted(s.class_name for s in samples)
    for sample in samples:
        defect_dir = Path(sample.image_uri).parent.name
        assert sample.defect_type == defect_dir
        assert sample.label == int(defect_dir != "good")
        assert (sample.mask_uri is None) == (sample.label == 0)
        if sample.mask_uri:
            assert sample.mask_uri.endswith(
                f"{sample.class_name}/ground_truth/{defect_dir}/{Path(sample.image_uri).stem}_mask.png"
            )
    assert {s.defect_type for s in samples} == {
        "good",
        "scratch",
        "crack",
        "hole",
        "stain",
        "missing",
        "color",
    }


def test_meta_and_folder_keep_defect_types_visa_has_none(
    synthetic_dataset_factory: DatasetFactory,
) -> None:
    def defects(layout: str) -> set[str]:
        root = _make(synthetic_dataset_factory, layout)
        return {s.defect_type for s in list_samples(_spec(root, layout)) if s.label == 1}

    assert defects("meta") == defects("folder") == defects("mvtec")
    assert defects("visa") == {"anomaly"}


def test_classes_filter_and_unknown_class(synthetic_dataset_factory: DatasetFactory) -> None:
    root = _make(synthetic_dataset_factory)
    samples = list_samples(_spec(root, "mvtec", classes=("pills",)))
    assert {s.class_name for s in samples} == {"pills"}
    with pytest.raises(DatasetError, match=r"classes carpet not found.*available: pills, wood"):
        list_samples(_spec(root, "mvtec", classes=("carpet",)))


def test_folder_root_is_one_class_named_after_it(
    synthetic_dataset_factory: DatasetFactory,
) -> None:
    root = _make(synthetic_dataset_factory, "folder")
    samples = list_samples(DatasetSpec(uri=str(root / "wood"), format="folder", split="test"))
    assert {s.class_name for s in samples} == {"wood"}
    assert len(samples) == COUNTS["n_test_good"] + COUNTS["n_test_bad"]


def test_folder_without_masks_folder_has_no_masks(
    synthetic_dataset_factory: DatasetFactory, tmp_path: Path
) -> None:
    root = _copy(synthetic_dataset_factory, tmp_path, "folder")
    shutil.rmtree(root / "wood" / "test" / "masks")
    samples = list_samples(DatasetSpec(uri=str(root / "wood"), format="folder"))
    anomalous = [s for s in samples if s.label == 1]
    assert anomalous and all(s.mask_uri is None for s in anomalous)
    _, mask = load_sample(anomalous[0], 32)
    assert mask.sum() == 0  # classification-only entry: all-zero mask, as officially


def test_load_sample_matches_the_official_pipeline(
    synthetic_dataset_factory: DatasetFactory,
) -> None:
    samples = list_samples(_spec(_make(synthetic_dataset_factory), "mvtec"))
    normal = next(s for s in samples if s.label == 0)
    anomalous = next(s for s in samples if s.label == 1)
    size = 40
    pixels, mask = load_sample(anomalous, size)
    assert pixels.shape == (3, size, size) and mask.shape == (size, size)
    assert torch.equal(pixels, preprocess_image(Image.open(anomalous.image_uri), size))
    assert anomalous.mask_uri is not None
    assert torch.equal(mask, mask_to_tensor(Image.open(anomalous.mask_uri), size))
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    _, normal_mask = load_sample(normal, size)
    assert normal_mask.sum() == 0


def test_listing_reads_no_image(synthetic_dataset_factory: DatasetFactory, tmp_path: Path) -> None:
    root = _copy(synthetic_dataset_factory, tmp_path)
    for png in root.rglob("*.png"):
        png.write_bytes(b"not an image")
    samples = list_samples(_spec(root, "mvtec"))  # fine: nothing is decoded while listing
    assert len(samples) == len(DOMAINS) * (COUNTS["n_test_good"] + COUNTS["n_test_bad"])
    with pytest.raises(DatasetError, match="unreadable_image"):
        load_sample(samples[0], 32)


def test_sample_rows_round_trip() -> None:
    sample = Sample("s3://b/x.png", None, 0, "wood", "good")
    assert Sample.from_row({**sample.as_row(), "extra": 1}) == sample


# --------------------------------------------------------------------------- bad entries


def test_missing_mask_errors_naming_the_entry_or_is_skipped(
    synthetic_dataset_factory: DatasetFactory, tmp_path: Path
) -> None:
    root = _copy(synthetic_dataset_factory, tmp_path)
    (root / "wood/ground_truth/crack/000_mask.png").unlink()
    with pytest.raises(DatasetError, match=r"wood/test/crack/000\.png \(missing_mask\)"):
        list_samples(_spec(root, "mvtec"))
    report = SkippedEntries()
    samples = list_samples(_spec(root, "mvtec", on_bad_entry="skip"), report=report)
    assert report.count == 1 and report.by_reason() == {"missing_mask": 1}
    assert report.entries[0].entry.endswith("wood/test/crack/000.png")
    assert len(samples) == len(DOMAINS) * 8 - 1
    assert report.summary() == "1 entries skipped (missing_mask: 1)"


@pytest.mark.parametrize("layout", ["visa", "meta"])
def test_index_entry_without_file(
    synthetic_dataset_factory: DatasetFactory, tmp_path: Path, layout: str
) -> None:
    root = _copy(synthetic_dataset_factory, tmp_path, layout)
    victim = next(s for s in list_samples(_spec(root, layout)) if s.label == 1)
    Path(victim.image_uri).unlink()
    assert victim.mask_uri is not None
    Path(victim.mask_uri).unlink()
    with pytest.raises(DatasetError, match="missing_image"):
        list_samples(_spec(root, layout))
    report = SkippedEntries()
    samples = list_samples(_spec(root, layout, on_bad_entry="skip"), report=report)
    assert report.by_reason() == {"missing_image": 1}
    assert victim not in samples and len(samples) == len(DOMAINS) * 8 - 1


def test_meta_record_without_required_keys(
    synthetic_dataset_factory: DatasetFactory, tmp_path: Path
) -> None:
    root = _copy(synthetic_dataset_factory, tmp_path, "meta")
    meta = json.loads((root / "meta.json").read_text())
    meta["test"]["wood"].append({"cls_name": "wood"})
    (root / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DatasetError, match=r"\[test\]\[wood\]\[8\] \(invalid_record\)"):
        list_samples(_spec(root, "meta"))
    report = SkippedEntries()
    list_samples(_spec(root, "meta", on_bad_entry="skip"), report=report)
    assert report.by_reason() == {"invalid_record": 1}


def test_mask_size_mismatch_and_truncated_image_at_load(
    synthetic_dataset_factory: DatasetFactory, tmp_path: Path
) -> None:
    root = _copy(synthetic_dataset_factory, tmp_path)
    spec = _spec(root, "mvtec", classes=("wood",))
    samples = [s for s in list_samples(spec) if s.label == 1]
    wrong, truncated = samples[0], samples[1]
    assert wrong.mask_uri is not None
    Image.fromarray(np.zeros((SIZE + 2, SIZE), np.uint8)).save(wrong.mask_uri)
    data = Path(truncated.image_uri).read_bytes()
    Path(truncated.image_uri).write_bytes(data[: len(data) // 2])

    with pytest.raises(DatasetError, match=r"000\.png \(mask_size_mismatch\).*48x48.*48x50"):
        load_sample(wrong, 32)
    with pytest.raises(DatasetError, match="unreadable_image"):
        load_sample(truncated, 32)
    with pytest.raises(DatasetError):
        list(iter_loaded(samples, spec, 32))
    report = SkippedEntries()
    skip = spec.model_copy(update={"on_bad_entry": "skip"})
    loaded = list(iter_loaded(iter_samples(skip), skip, 32, report=report))
    assert report.by_reason() == {"mask_size_mismatch": 1, "unreadable_image": 1}
    assert len(loaded) == 8 - 2
    assert all(item.pixels.shape == (3, 32, 32) for item in loaded)


def test_layout_errors_are_not_skippable(
    synthetic_dataset_factory: DatasetFactory, tmp_path: Path
) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        list_samples(DatasetSpec(uri=str(tmp_path / "nowhere"), on_bad_entry="skip"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="no MVTec-layout class"):
        list_samples(DatasetSpec(uri=str(tmp_path / "empty")))
    with pytest.raises(DatasetError, match="cannot read the dataset index"):
        list_samples(DatasetSpec(uri=str(tmp_path / "empty"), format="visa"))
    root = _copy(synthetic_dataset_factory, tmp_path)
    for train_dir in root.glob("*/train"):
        shutil.rmtree(train_dir)
    with pytest.raises(DatasetError, match="no train samples"):
        list_samples(_spec(root, "mvtec", split="train"))
