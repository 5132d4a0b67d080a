"""End-to-end batch scoring on a real local Ray cluster and a real S3 endpoint (moto).

One generated archive (a few hundred small images plus the bad-input corpus)
is scored from S3 into an Iceberg table whose warehouse is on S3 (SQLite
catalog); the tests then check the committed rows against the detector API,
re-runs (replacement), incremental runs, manifests, the embedded default
catalog, and SQL read-back with DuckDB and polars. Killed drivers and nodes are
in ``tests/reliability``.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from pyiceberg.expressions import EqualTo

from tests.fixtures.bad_inputs import OK, bad_input_corpus
from vip2clip.data.decode import decode_image
from vip2clip.data.preprocess import preprocess_image
from vip2clip.model import BackboneSpec, DetectorConfig, load_detector
from vip2clip.results import (
    MASK_QUANTISATION_ERROR,
    ResultsTable,
    TableRef,
    decode_mask,
    resolve_catalog,
)
from vip2clip.scoring import ScoringConfig, ScoringSummary, run_scoring

pytestmark = pytest.mark.integration

SIZE = 112
N_GOOD = 200
REPO = Path(__file__).resolve().parents[2]
DETECTOR = DetectorConfig(backbone=BackboneSpec.tiny(), image_size=SIZE)
CATALOG = "scoring"
TABLE = "it.scores"


@dataclass(frozen=True)
class Archive:
    """Objects uploaded under ``s3://bucket/prefix`` with their expected outcome."""

    bucket: str
    prefix: str
    objects: dict[str, tuple[bytes, str]]  # uri -> (bytes, "ok" | reason)

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def _image(rng: np.random.Generator, i: int) -> bytes:
    height, width = 64 + (i * 7) % 49, 64 + (i * 13) % 49  # 64..112 px, varied aspect
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG" if i % 2 else "PNG", quality=92)
    return buffer.getvalue()


def _upload(s3_server: Any, bucket: str, items: dict[str, bytes]) -> None:
    client = s3_server.client()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(
            pool.map(
                lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), items.items()
            )
        )


@pytest.fixture(scope="module")
def archive(s3_server: Any) -> Archive:
    bucket = s3_server.new_bucket("archive")
    prefix = "cams/2026"
    rng = np.random.default_rng(0)
    keys: dict[str, tuple[bytes, str]] = {}
    for i in range(N_GOOD):
        ext = "jpg" if i % 2 else "png"
        keys[f"{prefix}/line-{i % 4}/img-{i:04d}.{ext}"] = (_image(rng, i), OK)
    for item in bad_input_corpus():
        keys[f"{prefix}/{item.key}"] = (item.data, item.expected)
    keys[f"{prefix}/readme.txt"] = (b"not listed: wrong extension", "skip")
    _upload(s3_server, bucket, {k: v[0] for k, v in keys.items()})
    objects = {f"s3://{bucket}/{k}": v for k, v in keys.items() if v[1] != "skip"}
    return Archive(bucket, prefix, objects)


@pytest.fixture(scope="module")
def output(s3_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A named pyiceberg catalog (env variables): SQLite, warehouse on the S3 endpoint."""
    prefix = f"PYICEBERG_CATALOG__{CATALOG.upper()}__"
    settings = {
        f"{prefix}TYPE": "sql",
        f"{prefix}URI": f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'catalog.db'}",
        f"{prefix}WAREHOUSE": f"s3://{s3_server.new_bucket('warehouse')}/wh",
        f"{prefix}S3__ENDPOINT": s3_server.endpoint,
        # s3fs: pyarrow's multipart uploads fail against moto's CompleteMultipartUpload.
        f"{prefix}PY_IO_IMPL": "pyiceberg.io.fsspec.FsspecFileIO",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.items():
            patch.setenv(key, value)
        yield TABLE


def _rows(table: str, run_id: str, catalog: str | None = CATALOG) -> list[dict[str, Any]]:
    results = ResultsTable.open(TableRef(resolve_catalog(catalog), table))
    rows: list[dict[str, Any]] = results.read(EqualTo("run_id", run_id)).to_pylist()
    return rows


def _config(source: str, table: str, **changes: Any) -> ScoringConfig:
    values: dict[str, Any] = {
        "source": source,
        "table": table,
        "catalog": CATALOG,
        "detector": DETECTOR,
        "mode": "full",
        "batch_size": 8,
        "progress": False,
        "run_date": "2026-11-25",
    }
    return ScoringConfig.model_validate({**values, **changes})


@pytest.fixture(scope="module")
def first_run(ray_cluster: Any, archive: Archive, output: str) -> ScoringSummary:
    return run_scoring(_config(archive.uri, output, run_id="night-1"))


def _reference(blobs: list[bytes]) -> tuple[np.ndarray, np.ndarray, str]:
    detector = load_detector(DETECTOR.model_copy(update={"device": "cpu"}))
    scores, maps = [], []
    for start in range(0, len(blobs), 32):
        chunk = blobs[start : start + 32]
        pixels = torch.stack([preprocess_image(decode_image(b), SIZE) for b in chunk])
        out = detector.score_pixels(pixels)
        scores.append(out.scores.numpy())
        maps.append(out.anomaly_maps.numpy())
    return np.concatenate(scores), np.concatenate(maps), detector.identity


def test_one_row_per_input_with_the_right_outcome(
    first_run: ScoringSummary, archive: Archive, output: str
) -> None:
    rows = _rows(output, "night-1")
    uris = [r["source_uri"] for r in rows]
    assert len(uris) == len(set(uris)) == len(archive.objects)
    assert set(uris) == set(archive.objects)
    for row in rows:
        expected = archive.objects[row["source_uri"]][1]
        outcome = row["status"] if row["status"] == OK else row["error_reason"]
        assert outcome == expected, row["source_uri"]
    expected_errors = Counter(e for _, e in archive.objects.values() if e != OK)
    assert first_run.error_reasons == dict(expected_errors)
    assert first_run.ok == sum(1 for _, e in archive.objects.values() if e == OK)
    assert (first_run.listed, first_run.skipped) == (len(archive.objects), 0)
    assert first_run.ok + first_run.errors == len(archive.objects)
    assert not (first_run.resumed or first_run.replaced)
    assert {str(r["run_date"]) for r in rows} == {"2026-11-25"}


def test_scores_and_masks_match_the_detector_api(
    first_run: ScoringSummary, archive: Archive, output: str, s3_server: Any
) -> None:
    rows = [r for r in _rows(output, "night-1") if r["status"] == OK]
    rows.sort(key=lambda r: r["source_uri"])
    scores, maps, model_id = _reference([archive.objects[r["source_uri"]][0] for r in rows])
    np.testing.assert_allclose([r["image_score"] for r in rows], scores, atol=1e-5)
    for row, anomaly in zip(rows, maps, strict=True):
        assert row["model_id"] == model_id == first_run.model_id
        mask = decode_mask(row["mask_png"])
        assert mask.shape == (SIZE, SIZE) == (row["mask_height"], row["mask_width"])
        assert np.abs(mask - anomaly).max() <= MASK_QUANTISATION_ERROR + 1e-6
        assert row["is_anomalous"] == (row["image_score"] >= row["image_threshold"])
        assert row["max_pixel_score"] == pytest.approx(float(anomaly.max()), abs=1e-6)
    client = s3_server.client()
    row = rows[0]
    head = client.head_object(Bucket=archive.bucket, Key=row["source_uri"].split("/", 3)[3])
    assert row["object_etag"] == head["ETag"].strip('"')
    assert row["object_size"] == head["ContentLength"]
    image = Image.open(io.BytesIO(archive.objects[row["source_uri"]][0]))
    assert (row["image_width"], row["image_height"]) == image.size


def test_rerunning_a_complete_run_replaces_it_in_one_snapshot(
    first_run: ScoringSummary, archive: Archive, output: str
) -> None:
    again = run_scoring(_config(archive.uri, output, run_id="night-1"))
    assert again.replaced and again.ok + again.errors == first_run.ok + first_run.errors
    rows = _rows(output, "night-1")
    assert len(rows) == len({r["source_uri"] for r in rows}) == len(archive.objects)
    results = ResultsTable.open(TableRef(resolve_catalog(CATALOG), output))
    head = results.snapshots()[-1]
    assert head.snapshot_id == again.snapshot_id and head.operation == "overwrite"
    assert head.run_id == "night-1" and head.run_complete and head.total_rows == len(rows)
    assert list(results.table.metadata.refs) == ["main"]  # the replace branch is gone


def test_incremental_run_scores_only_new_and_changed_objects(
    first_run: ScoringSummary, archive: Archive, output: str, s3_server: Any
) -> None:
    rng = np.random.default_rng(99)
    new = {f"{archive.prefix}/new/img-{i}.png": _image(rng, i) for i in range(6)}
    changed_key = next(k.split("/", 3)[3] for k, v in archive.objects.items() if v[1] == OK)
    _upload(s3_server, archive.bucket, {**new, changed_key: _image(rng, 1000)})
    summary = run_scoring(_config(archive.uri, output, run_id="night-2", mode="incremental"))
    scored = {r["source_uri"] for r in _rows(output, "night-2")}
    expected = {f"s3://{archive.bucket}/{k}" for k in [*new, changed_key]}
    assert scored == expected
    assert (summary.ok, summary.errors) == (len(expected), 0)
    assert summary.skipped == len(archive.objects) - 1
    assert summary.listed == len(archive.objects) + len(new)


@pytest.fixture(scope="module")
def local_results(ray_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A manifest scored into the embedded default catalog (no catalog configured)."""
    root = tmp_path_factory.mktemp("local-archive")
    rng = np.random.default_rng(5)
    names = []
    for i in range(24):
        (root / f"part-{i:02d}.png").write_bytes(_image(rng, i))
        names.append(f"part-{i:02d}.png")
    jpeg = _image(rng, 1)  # odd index: JPEG
    (root / "broken.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    manifest = root / "todo.txt"
    manifest.write_text("\n".join([*names, "broken.jpg", "# a comment", "missing.png"]) + "\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VIP2CLIP_HOME", str(tmp_path_factory.mktemp("vip2clip-home")))
        config = _config(str(manifest), "local.scores", run_id="manifest-run", catalog=None)
        summary = run_scoring(config)
        assert (summary.ok, summary.errors) == (24, 2)
        yield "local.scores"


def test_manifest_source_reports_missing_objects(local_results: str) -> None:
    rows = _rows(local_results, "manifest-run", catalog=None)
    assert resolve_catalog(None).embedded
    reasons = {Path(r["source_uri"]).name: r["error_reason"] for r in rows}
    assert reasons["missing.png"] == "object_missing"
    assert reasons["broken.jpg"] == "truncated_image"
    assert sum(1 for r in reasons.values() if r is None) == 24


def test_duckdb_and_polars_read_back(local_results: str) -> None:
    import duckdb
    import polars as pl

    results = ResultsTable.open(TableRef(resolve_catalog(None), local_results))
    expected = results.read().to_pylist()
    top = sorted((r for r in expected if r["status"] == OK), key=lambda r: -r["image_score"])[:10]
    con = duckdb.connect()
    con.register("results", results.dataset())
    top_sql = con.execute(
        "SELECT source_uri FROM results WHERE status = 'ok' ORDER BY image_score DESC LIMIT 10"
    ).fetchall()
    assert [u for (u,) in top_sql] == [r["source_uri"] for r in top]
    counts = dict(con.execute("SELECT status, count(*) FROM results GROUP BY status").fetchall())
    assert counts == {"ok": 24, "error": 2}
    run = con.execute("SELECT DISTINCT run_id, CAST(run_date AS VARCHAR) FROM results").fetchall()
    assert run == [("manifest-run", "2026-11-25")]
    area = con.execute(
        "SELECT count(*) FROM results WHERE anomalous_area_fraction > 0.01"
    ).fetchone()
    expected_area = sum(1 for r in expected if (r["anomalous_area_fraction"] or 0) > 0.01)
    assert area is not None and area[0] == expected_area

    frame = pl.scan_iceberg(results.table)
    by_status = frame.group_by("status").len().collect()
    assert dict(zip(by_status["status"], by_status["len"], strict=True)) == counts
    top_pl = (
        frame.filter(pl.col("status") == "ok")
        .sort("image_score", descending=True)
        .head(10)
        .select("source_uri")
        .collect()
    )
    assert top_pl["source_uri"].to_list() == [r["source_uri"] for r in top]


def test_unreachable_source_is_a_clear_error(ray_cluster: Any, output: str) -> None:
    from vip2clip.errors import StorageError

    with pytest.raises(StorageError, match="not reachable"):
        run_scoring(_config("s3://no-such-bucket-h5b/x", output, run_id="never"))
