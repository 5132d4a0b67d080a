"""``evaluate`` end to end: tiny backbone on the generated dataset, locally, on Ray and S3, CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from vip2clip.cli.main import main as cli_main
from vip2clip.data.datasets import DatasetSpec, list_samples, load_sample
from vip2clip.errors import DatasetError
from vip2clip.eval.evaluate import EvaluateConfig, evaluate
from vip2clip.eval.metrics import f1_max
from vip2clip.eval.report import METRIC_NAMES, EvaluationAccumulator, EvaluationReport
from vip2clip.model import (
    BackboneSpec,
    DetectorConfig,
    LearnerMetadata,
    ViP2CLIP,
    load_backbone,
    load_detector,
    load_learner,
    save_learner,
)
from vip2clip.storage import read_bytes

pytestmark = pytest.mark.integration

IMAGE_SIZE = 112  # native size of the tiny backbone
BATCH = 8
RAY_PIXEL_TOL = 1e-3
TINY = DetectorConfig(backbone=BackboneSpec.tiny(), image_size=IMAGE_SIZE, device="cpu")


def _config(dataset_uri: str, **changes: Any) -> EvaluateConfig:
    dataset = DatasetSpec(uri=dataset_uri, **changes.pop("dataset", {}))
    return EvaluateConfig(
        detector=changes.pop("detector", TINY),
        dataset=dataset,
        batch_size=BATCH,
        progress=False,
        **changes,
    )


def _assert_same_rows(a: EvaluationReport, b: EvaluationReport, tol: float) -> None:
    assert [r.class_name for r in a.rows] == [r.class_name for r in b.rows]
    for row_a, row_b in zip((*a.rows, a.mean), (*b.rows, b.mean), strict=True):
        assert (row_a.n_images, row_a.n_anomalous) == (row_b.n_images, row_b.n_anomalous)
        for name in METRIC_NAMES:
            assert getattr(row_a, name) == pytest.approx(getattr(row_b, name), abs=tol), name


@pytest.fixture(scope="module")
def local_result(synthetic_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    output = tmp_path_factory.mktemp("eval-local")
    return evaluate(_config(str(synthetic_dataset), output=str(output))), output


def test_local_evaluation_equals_direct_scoring(local_result: Any, synthetic_dataset: Path) -> None:
    result, _ = local_result
    detector = load_detector(TINY)
    direct = EvaluationAccumulator()
    labels, scores = [], []
    samples = list_samples(DatasetSpec(uri=str(synthetic_dataset)))
    for start in range(0, len(samples), BATCH):  # same batches: bit-identical model outputs
        chunk = samples[start : start + BATCH]
        loaded = [load_sample(s, IMAGE_SIZE) for s in chunk]
        out = detector.score_pixels(torch.stack([pixels for pixels, _ in loaded]))
        masks = torch.stack([mask for _, mask in loaded]).numpy()
        names = [s.class_name for s in chunk]
        direct.add(names, [s.label for s in chunk], out.scores.numpy(), out.anomaly_maps, masks)
        labels += [s.label for s in chunk]
        scores += out.scores.tolist()
    _assert_same_rows(result.report, direct.report(), tol=1e-9)
    pooled = result.report.thresholds
    assert pooled.image_f1 == pytest.approx(f1_max(labels, scores).f1, abs=1e-9)
    assert result.n_scored == 50 and result.skipped.count == 0
    assert len(result.report.rows) == 5


def test_local_evaluation_writes_the_table(local_result: Any) -> None:
    result, output = local_result
    markdown = (output / "metrics.md").read_text()
    assert "| **mean** | **50** | **30** |" in markdown
    table = json.loads((output / "metrics.json").read_text())
    assert [c["class_name"] for c in table["classes"]] == [r.class_name for r in result.report.rows]
    for value in table["mean"].values():
        assert value is None or isinstance(value, str) or 0 <= value <= 50
    assert 0 <= table["thresholds"]["image"] <= 1


def test_ray_evaluation_on_s3_matches_local(
    ray_cluster: Any, synthetic_dataset_s3: str, s3_server: Any, local_result: Any
) -> None:
    output = f"s3://{s3_server.new_bucket('eval')}/report"
    config = _config(synthetic_dataset_s3, output=output, ray_address=ray_cluster.address)
    result = evaluate(config)
    # Ray may batch differently, which moves model outputs by ~1e-7 (CPU float rounding); the
    # tiny random backbone's maps span only ~1e-2, so that noise shifts some pixels across
    # histogram bins: pixel metrics agree to the quantisation error, image metrics closely.
    _assert_same_rows(result.report, local_result[0].report, tol=RAY_PIXEL_TOL)
    for row, local_row in zip(result.report.rows, local_result[0].report.rows, strict=True):
        assert row.image_auroc == pytest.approx(local_row.image_auroc, abs=1e-6)
        assert row.image_ap == pytest.approx(local_row.image_ap, abs=1e-6)
    table = json.loads(read_bytes(f"{output}/metrics.json"))
    assert table["mean"]["image_auroc"] == pytest.approx(result.report.mean.image_auroc)


def test_write_thresholds_into_learner(synthetic_dataset: Path, tmp_path: Path) -> None:
    learner = tmp_path / "learner.safetensors"
    model = ViP2CLIP(load_backbone(TINY.backbone), TINY)
    save_learner(str(learner), model.learner, LearnerMetadata(prompts=TINY.prompts))
    detector = TINY.model_copy(update={"learner": str(learner)})
    config = _config(
        str(synthetic_dataset),
        detector=detector,
        write_thresholds=True,
        dataset={"classes": ("wood",)},
    )
    result = evaluate(config)
    _, metadata = load_learner(str(learner))
    assert result.thresholds_written
    assert metadata.image_threshold == result.report.thresholds.image
    assert metadata.pixel_threshold == result.report.thresholds.pixel
    assert not math.isnan(result.report.thresholds.pixel)


def test_bad_entries_error_or_skip(synthetic_dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "dataset"
    shutil.copytree(synthetic_dataset / "wood", root / "wood")
    broken = sorted((root / "wood" / "test" / "good").iterdir())[0]
    broken.write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=broken.name):
        evaluate(_config(str(root)))
    result = evaluate(_config(str(root), dataset={"on_bad_entry": "skip"}))
    assert result.skipped.count == 1 and result.skipped.by_reason() == {"unreadable_image": 1}
    assert result.n_scored == result.report.mean.n_images == 9


def test_cli_prints_and_writes(
    synthetic_dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["evaluate", str(synthetic_dataset), "--model", "vip2clip-tiny", "--pretrained", "none"]
    args += ["--image-size", str(IMAGE_SIZE), "--device", "cpu", "--classes", "pills,tiles"]
    args += ["--no-progress", "--output", str(tmp_path), "--set", "aupro_method=anomalib"]
    assert cli_main(args) == 0
    printed = capsys.readouterr().out
    assert "| pills | 10 | 6 |" in printed and "| tiles | 10 | 6 |" in printed
    assert "AUPRO: anomalib method" in printed
    assert "scored 20 images" in printed
    table = json.loads((tmp_path / "metrics.json").read_text())
    assert table["aupro_method"] == "anomalib"
    assert np.isfinite(table["mean"]["pixel_aupro"])


def test_cli_user_errors_are_one_line(
    synthetic_dataset: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["evaluate", str(synthetic_dataset), "--classes", "nope", "--model", "vip2clip-tiny"]
    assert cli_main([*args, "--pretrained", "none"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("vip2clip: error: classes nope not found")
    assert cli_main(["evaluate", str(synthetic_dataset), "--set", "batch_size=0"]) == 2
