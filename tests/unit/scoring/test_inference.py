"""The inference callable class, run in-process on the tiny random detector."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from vip2clip.data.decode import decode_image
from vip2clip.data.preprocess import preprocess_image
from vip2clip.model import BackboneSpec, DetectorConfig, load_detector
from vip2clip.scoring import stages
from vip2clip.scoring.config import DEFAULT_IMAGE_THRESHOLD
from vip2clip.scoring.inference import InferenceWorker, Thresholds
from vip2clip.storage import StorageConfig

SIZE = 112
CONFIG = DetectorConfig(backbone=BackboneSpec.tiny(), image_size=SIZE, device="cpu")


def _images(n: int) -> list[bytes]:
    rng = np.random.default_rng(7)
    out = []
    for i in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64 + 8 * i, 80, 3), dtype=np.uint8)).save(
            buffer, format="PNG"
        )
        out.append(buffer.getvalue())
    return out


def _decoded(blobs: list[bytes | None]) -> pa.Table:
    rows = []
    for i, blob in enumerate(blobs):
        rows.append(
            {
                "source_uri": f"/x/{i}.png",
                "object_size": 1,
                "object_etag": None,
                "object_mtime": None,
                "status": "ok" if blob else "error",
                "error_reason": None if blob else "empty_object",
                "error_detail": None if blob else "zero bytes",
                "read_ms": 0.0,
                "data": blob,
            }
        )
    read = pa.Table.from_pylist(rows, schema=stages.READ_SCHEMA)
    return stages.decode_objects(read, SIZE, 10**8)


@pytest.fixture(scope="module")
def worker() -> InferenceWorker:
    return InferenceWorker(CONFIG, StorageConfig(), None, 0.55, run_id="unit", cpu_threads=1)


def test_scores_and_maps_equal_the_detector_api(worker: InferenceWorker) -> None:
    blobs = _images(3)
    out = worker(_decoded([blobs[0], None, blobs[1], blobs[2]]))
    assert out.schema == stages.SCORED_SCHEMA
    rows = out.to_pylist()
    detector = load_detector(CONFIG)
    pixels = torch.stack([preprocess_image(decode_image(b), SIZE) for b in blobs])
    reference = detector.score_pixels(pixels)
    ok_rows = [rows[0], rows[2], rows[3]]
    for row, score, anomaly in zip(ok_rows, reference.scores, reference.anomaly_maps, strict=True):
        assert row["image_score"] == pytest.approx(float(score), abs=1e-6)
        ours = stages.map_array(row["anomaly_map"], row["map_size"])
        np.testing.assert_allclose(ours, anomaly.numpy(), atol=1e-6)
        assert row["model_id"] == detector.identity and row["inference_ms"] > 0


def test_error_rows_pass_through_untouched(worker: InferenceWorker) -> None:
    rows = worker(_decoded([None])).to_pylist()
    assert (rows[0]["status"], rows[0]["error_reason"]) == ("error", "empty_object")
    assert rows[0]["image_score"] is None and rows[0]["anomaly_map"] is None
    assert rows[0]["model_id"] == worker.detector.identity


def test_thresholds_come_from_config_then_metadata_then_default(worker: InferenceWorker) -> None:
    row = worker(_decoded(_images(1))).to_pylist()[0]
    assert (row["image_threshold"], row["pixel_threshold"]) == (DEFAULT_IMAGE_THRESHOLD, 0.55)
    assert Thresholds(None, None, 0.3, 0.4).image == 0.3
    assert Thresholds(0.9, None, 0.3, 0.4).image == 0.9


def test_a_failing_image_becomes_inference_failed(
    worker: InferenceWorker, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = worker.detector.score_rgb

    def fail_on_large_batches(rgb: torch.Tensor):  # type: ignore[no-untyped-def]
        if rgb.shape[0] > 1 or float(rgb.float().mean()) > 127:  # batch fails; so does 1 image
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(rgb)

    monkeypatch.setattr(worker.detector, "score_rgb", fail_on_large_batches)
    bright = io.BytesIO()
    Image.new("RGB", (64, 64), (255, 255, 255)).save(bright, format="PNG")
    dark = io.BytesIO()
    Image.new("RGB", (64, 64), (0, 0, 0)).save(dark, format="PNG")
    rows = worker(_decoded([bright.getvalue(), dark.getvalue()])).to_pylist()
    assert (rows[0]["status"], rows[0]["error_reason"]) == ("error", "inference_failed")
    assert "out of memory" in rows[0]["error_detail"]
    assert rows[1]["status"] == "ok" and rows[1]["image_score"] is not None
