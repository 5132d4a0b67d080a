"""The CPU stages: read, decode, results rows."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from tests.fixtures.bad_inputs import OK, bad_input_corpus
from vip2clip import storage
from vip2clip.data.decode import decode_image
from vip2clip.data.preprocess import normalize_rgb, preprocess_image
from vip2clip.results import MASK_QUANTISATION_ERROR, RESULTS_SCHEMA, decode_mask, region_stats
from vip2clip.scoring import stages
from vip2clip.scoring.source import LISTING_SCHEMA
from vip2clip.storage import StorageConfig

SIZE = 32


def _listing(uris: list[str]) -> pa.Table:
    n = len(uris)
    return pa.table(
        {
            "source_uri": uris,
            "object_size": [1] * n,
            "object_etag": [None] * n,
            "object_mtime": [None] * n,
        },
        schema=LISTING_SCHEMA,
    )


def _read_block(blobs: list[bytes | None]) -> pa.Table:
    rows: list[dict[str, Any]] = []
    for i, blob in enumerate(blobs):
        ok = blob is not None
        rows.append(
            {
                "source_uri": f"s3://b/{i}",
                "object_size": None,
                "object_etag": None,
                "object_mtime": None,
                "status": "ok" if ok else "error",
                "error_reason": None if ok else "object_missing",
                "error_detail": None if ok else "gone",
                "read_ms": 1.0,
                "data": blob,
            }
        )
    return pa.Table.from_pylist(rows, schema=stages.READ_SCHEMA)


def _png(shape: tuple[int, ...], seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_read_objects_reads_files_and_reports_missing_ones(tmp_path: Path) -> None:
    present = tmp_path / "a.png"
    present.write_bytes(b"abc")
    block = stages.read_objects(
        _listing([str(present), str(tmp_path / "gone.png")]), StorageConfig(), attempts=2
    )
    rows = block.to_pylist()
    assert block.schema == stages.READ_SCHEMA
    assert (rows[0]["status"], rows[0]["data"], rows[0]["error_reason"]) == ("ok", b"abc", None)
    assert (rows[1]["status"], rows[1]["error_reason"]) == ("error", "object_missing")
    assert rows[1]["data"] is None and rows[1]["read_ms"] >= 0


class _FlakyFs:
    """Stands in for a store whose faults cannot be produced locally (throttling, 403)."""

    def __init__(self, errors: list[Exception]) -> None:
        self.errors = errors
        self.calls = 0

    def cat_file(self, path: str, start: int | None = None, end: int | None = None) -> bytes:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return b"data"


def _with_fs(monkeypatch: pytest.MonkeyPatch, fs: _FlakyFs) -> None:
    monkeypatch.setattr(storage, "filesystem", lambda uri, cfg=None: (fs, uri))


def test_transient_read_errors_are_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    fs = _FlakyFs([ConnectionResetError("reset"), TimeoutError("slow")])
    _with_fs(monkeypatch, fs)
    sleeps: list[float] = []
    assert stages.read_object("s3://b/k", StorageConfig(), 3, sleep=sleeps.append) == b"data"
    assert fs.calls == 3 and sleeps == [stages.READ_RETRY_BASE_S, 2 * stages.READ_RETRY_BASE_S]


def test_read_gives_up_with_read_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    _with_fs(monkeypatch, _FlakyFs([OSError("boom")] * 3))
    with pytest.raises(stages.ReadError) as caught:
        stages.read_object("s3://b/k", StorageConfig(), 3, sleep=lambda _: None)
    assert caught.value.reason == "read_failed" and "boom" in caught.value.detail


def test_permission_denied_is_final(monkeypatch: pytest.MonkeyPatch) -> None:
    fs = _FlakyFs([PermissionError("AccessDenied")])
    _with_fs(monkeypatch, fs)
    with pytest.raises(stages.ReadError) as caught:
        stages.read_object("s3://b/k", StorageConfig(), 3, sleep=lambda _: None)
    assert caught.value.reason == "permission_denied" and fs.calls == 1


def test_decode_gives_the_corpus_outcomes() -> None:
    corpus = bad_input_corpus()
    block = stages.decode_objects(_read_block([c.data for c in corpus]), SIZE, 100_000_000)
    assert block.schema == stages.DECODED_SCHEMA
    for item, row in zip(corpus, block.to_pylist(), strict=True):
        outcome = row["status"] if row["status"] == OK else row["error_reason"]
        assert outcome == item.expected, item.key
        assert (row["pixels"] is None) == (item.expected != OK)


def test_read_errors_pass_through_decode() -> None:
    row = stages.decode_objects(_read_block([None]), SIZE, 10**8).to_pylist()[0]
    assert (row["status"], row["error_reason"], row["error_detail"]) == (
        "error",
        "object_missing",
        "gone",
    )


def test_decoded_pixels_normalise_to_exactly_the_model_preprocessing() -> None:
    data = _png((40, 56, 4), seed=3)  # RGBA, non-square: resized in its own mode
    row = stages.decode_objects(_read_block([data]), SIZE, 10**8).to_pylist()[0]
    assert (row["image_width"], row["image_height"]) == (56, 40)
    ours = normalize_rgb(torch.from_numpy(stages.pixels_array(row["pixels"], SIZE).copy()))
    reference = preprocess_image(decode_image(data), SIZE)
    assert torch.equal(ours, reference)


def test_pixel_limit_is_applied() -> None:
    row = stages.decode_objects(_read_block([_png((40, 40, 3))]), SIZE, 1000).to_pylist()[0]
    assert row["error_reason"] == "decompression_bomb"


def _scored_block(maps: list[np.ndarray | None], score: float = 0.7) -> pa.Table:
    rows = []
    for i, anomaly in enumerate(maps):
        ok = anomaly is not None
        rows.append(
            {
                "source_uri": f"s3://b/{i}",
                "object_size": 5,
                "object_etag": "e",
                "object_mtime": None,
                "status": "ok" if ok else "error",
                "error_reason": None if ok else "truncated_image",
                "error_detail": None if ok else "cut",
                "read_ms": 1.0,
                "decode_ms": 2.0 if ok else None,
                "image_width": 200 if ok else None,
                "image_height": 100 if ok else None,
                "model_id": "m",
                "image_score": score if ok else None,
                "image_threshold": 0.5,
                "pixel_threshold": 0.6,
                "map_size": SIZE if ok else None,
                "anomaly_map": anomaly.astype(np.float32).tobytes() if ok else None,
                "inference_ms": 3.0 if ok else None,
            }
        )
    return pa.Table.from_pylist(rows, schema=stages.SCORED_SCHEMA)


def test_results_rows_carry_decision_mask_and_region_stats() -> None:
    anomaly = np.zeros((SIZE, SIZE), dtype=np.float32)
    anomaly[4:10, 8:20] = 0.9
    anomaly[20:22, 0:2] = 0.8
    when = datetime(2026, 11, 25, tzinfo=UTC)
    table = stages.to_results(_scored_block([anomaly, None]), "r1", "2026-12-05", scored_at=when)
    assert table.schema.equals(RESULTS_SCHEMA, check_metadata=False)
    assert set(table.column("run_id").to_pylist()) == {"r1"}
    ok, error = table.to_pylist()
    assert ok["is_anomalous"] is True and ok["image_score"] == pytest.approx(0.7)
    assert np.abs(decode_mask(ok["mask_png"]) - anomaly).max() <= MASK_QUANTISATION_ERROR + 1e-7
    expected = region_stats(anomaly, 0.6, (200, 100))
    assert (ok["bbox_x0"], ok["bbox_y0"], ok["bbox_x1"], ok["bbox_y1"]) == (
        expected.bbox_x0,
        expected.bbox_y0,
        expected.bbox_x1,
        expected.bbox_y1,
    )
    assert ok["anomalous_area_fraction"] == pytest.approx((6 * 12 + 4) / SIZE**2)
    assert ok["max_pixel_score"] == pytest.approx(0.9)
    assert (ok["mask_height"], ok["mask_width"], ok["scored_at"]) == (SIZE, SIZE, when)
    assert error["status"] == "error" and error["error_reason"] == "truncated_image"
    assert error["mask_png"] is None and error["is_anomalous"] is None
    assert error["model_id"] == "m" and error["scored_at"] == when


def test_decision_below_threshold_is_normal() -> None:
    row = stages.to_results(
        _scored_block([np.zeros((SIZE, SIZE))], score=0.2), "r1", "2026-12-05"
    ).to_pylist()[0]
    assert row["is_anomalous"] is False and row["bbox_x0"] is None


def test_load_applies_the_object_size_cap_per_object(tmp_path: Path) -> None:
    small, large = tmp_path / "small.png", tmp_path / "large.png"
    small.write_bytes(_png((20, 20, 3)))
    large.write_bytes(_png((60, 60, 3)))
    listing = _listing([str(small), str(large)])  # listing sizes say 1 byte: not trusted
    cap = small.stat().st_size
    block = stages.load_objects(listing, StorageConfig(), 1, SIZE, 10**8, max_object_bytes=cap)
    rows = block.to_pylist()
    assert block.schema == stages.DECODED_SCHEMA
    assert [(r["status"], r["error_reason"]) for r in rows] == [
        ("ok", None),
        ("error", "too_large"),
    ]
    assert rows[1]["pixels"] is None and "max_object_bytes" in rows[1]["error_detail"]
