"""Synthetic datasets written to and read back from a real S3 endpoint (moto server)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.fixtures.datasets import SYNTHETIC_DEFAULTS, DatasetFactory
from vip2clip.data.datasets import (
    DatasetSpec,
    Sample,
    SkippedEntries,
    list_samples,
    load_sample,
)
from vip2clip.data.synthetic import generate_archive, generate_dataset
from vip2clip.errors import DatasetError, StorageError
from vip2clip.storage import filesystem, join

pytestmark = pytest.mark.integration

SMALL: dict[str, Any] = {
    "domains": ("metal", "pills"),
    "n_train_good": 2,
    "n_test_good": 2,
    "n_test_bad": 4,
    "image_size": 48,
    "seed": 3,
}


def _relative(samples: list[Sample], root: str) -> Counter[tuple[str | None, ...]]:
    def rel(uri: str | None) -> str | None:
        return uri[len(root.rstrip("/")) + 1 :] if uri else None

    return Counter(
        (rel(s.image_uri), rel(s.mask_uri), str(s.label), s.class_name, s.defect_type)
        for s in samples
    )


@pytest.mark.parametrize("layout", ["mvtec", "visa", "meta", "folder"])
def test_s3_reader_equals_local_reader(
    s3_server: Any, synthetic_dataset_factory: DatasetFactory, layout: str
) -> None:
    uri = f"s3://{s3_server.new_bucket('ds')}/data/{layout}"
    generate_dataset(uri, layout=layout, **SMALL)
    local = synthetic_dataset_factory(layout=layout, **SMALL)
    classes = {"classes": SMALL["domains"]} if layout == "folder" else {}
    for split in ("train", "test"):
        remote = list_samples(DatasetSpec(uri=uri, format=layout, split=split, **classes))
        here = list_samples(DatasetSpec(uri=str(local), format=layout, split=split, **classes))
        assert all(s.image_uri.startswith(uri + "/") for s in remote)
        assert _relative(remote, uri) == _relative(here, str(local))
    anomalous_remote = next(s for s in remote if s.label == 1)
    anomalous_local = next(
        s for s in here if s.image_uri.endswith(anomalous_remote.image_uri[len(uri) :])
    )
    for got, want in zip(
        load_sample(anomalous_remote, 32), load_sample(anomalous_local, 32), strict=True
    ):
        assert torch.equal(got, want)


def test_s3_fixture_dataset_and_bad_entries(synthetic_dataset_s3: str, s3_server: Any) -> None:
    samples = list_samples(DatasetSpec(uri=synthetic_dataset_s3, split="test"))
    per_class = SYNTHETIC_DEFAULTS["n_test_good"] + SYNTHETIC_DEFAULTS["n_test_bad"]
    assert len(samples) == len(SYNTHETIC_DEFAULTS["domains"]) * per_class

    # damage a copy: one mask object removed
    uri = f"s3://{s3_server.new_bucket('bad')}/mvtec"
    generate_dataset(uri, **SMALL)
    fs, _ = filesystem(uri)
    victim = join(uri, "pills/ground_truth/hole/000_mask.png")
    fs.rm(filesystem(victim)[1])
    with pytest.raises(DatasetError, match=r"pills/test/hole/000\.png \(missing_mask\)"):
        list_samples(DatasetSpec(uri=uri))
    report = SkippedEntries()
    kept = list_samples(DatasetSpec(uri=uri, on_bad_entry="skip"), report=report)
    assert report.by_reason() == {"missing_mask": 1}
    assert len(kept) == 2 * (2 + 4) - 1


def test_s3_archive(s3_server: Any, tmp_path: Path) -> None:
    uri = f"s3://{s3_server.new_bucket('night')}/2026-11-25"
    entries = generate_archive(uri, count=15, image_size=48, seed=1)
    local = generate_archive(str(tmp_path), count=15, image_size=48, seed=1)
    fs, path = filesystem(uri)
    keys = sorted(fs.find(path))
    assert [f"s3://{k}" for k in keys] == [e.uri for e in entries]
    for entry, twin in zip(entries, local, strict=True):
        assert fs.cat_file(filesystem(entry.uri)[1]) == Path(twin.uri).read_bytes()


def test_upload_failure_is_a_storage_error(s3_server: Any) -> None:
    with pytest.raises(StorageError, match="could not write"):
        generate_dataset("s3://no-such-bucket-vip2clip/ds", **SMALL)
