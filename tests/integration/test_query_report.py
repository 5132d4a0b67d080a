"""Query, report and maintain a real scoring run: Ray cluster, S3 endpoint (moto), tiny model.

A small archive (noise images, one object named ``<script>alert(1)</script>.png``, one
corrupt object) is scored from S3 by ``run_scoring`` into an Iceberg table whose
warehouse is on S3 (SQLite catalog named by ``PYICEBERG_CATALOG__QR__*``), committed in
several small snapshots. Then ``vip2clip query`` must return the committed rows with
DuckDB and polars, now and as of the first snapshot; ``vip2clip table history`` must list
the run's snapshots; ``vip2clip report`` must render the run — escaping the crafted key,
surviving a source image deleted since scoring, leaking no credential — and open in
headless Chromium; maintenance must compact the small files, expire the history and
remove orphan files on S3 without changing a row.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import subprocess
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from tests.fixtures.s3 import TEST_CREDENTIALS
from vip2clip.cli.main import main
from vip2clip.data.decode import CORRUPT_IMAGE
from vip2clip.model import BackboneSpec, DetectorConfig
from vip2clip.results import ResultsTable, TableRef, resolve_catalog, write_data_files
from vip2clip.results.filters import run_rows
from vip2clip.results.maintenance import MaintenancePolicy, run_maintenance
from vip2clip.scoring import ScoringConfig, ScoringSummary, run_scoring
from vip2clip.storage import filesystem

pytestmark = pytest.mark.integration

SIZE = 112
N_IMAGES = 8
RUN_ID = "night-q1"
RUN_DATE = "2026-11-25"
CATALOG = "qr"
TABLE = "vision.results"
TABLE_ARGS = ["--table", TABLE, "--catalog", CATALOG]
COMMIT_EVERY = 3  # rows: several snapshots and small files, for time travel and compaction
ROWS_PER_FILE = 2
CRAFTED_KEY = "<script>alert(1)</script>.png"
CORRUPT_KEY = "corrupt.png"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")  # Debian package: chromium
CHROMIUM_TIMEOUT_S = 120
SCREENSHOT_SIZE = (1280, 2000)
LATER = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)  # every snapshot and file is old


def _png(rng: np.random.Generator, height: int = 80, width: int = 96) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def warehouse(s3_server: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Catalog ``qr``: SQLite, its warehouse in a bucket of the S3 endpoint (the bucket)."""
    bucket = s3_server.new_bucket("warehouse")
    prefix = f"PYICEBERG_CATALOG__{CATALOG.upper()}__"
    settings = {
        f"{prefix}TYPE": "sql",
        f"{prefix}URI": f"sqlite:///{tmp_path_factory.mktemp('catalog') / 'catalog.db'}",
        f"{prefix}WAREHOUSE": f"s3://{bucket}/wh",
        f"{prefix}S3__ENDPOINT": s3_server.endpoint,
        # s3fs: pyarrow's multipart uploads fail against moto's CompleteMultipartUpload.
        f"{prefix}PY_IO_IMPL": "pyiceberg.io.fsspec.FsspecFileIO",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.items():
            patch.setenv(key, value)
        yield bucket


def _results() -> ResultsTable:
    return ResultsTable.open(TableRef(resolve_catalog(CATALOG), TABLE))


@pytest.fixture(scope="module")
def scored(ray_cluster: Any, s3_server: Any, warehouse: str) -> tuple[str, ScoringSummary]:
    """``(archive bucket, summary)`` of one run committed in several snapshots."""
    bucket = s3_server.new_bucket("qr")
    client = s3_server.client()
    rng = np.random.default_rng(7)
    objects = {f"archive/img-{i}.png": _png(rng) for i in range(N_IMAGES)}
    objects[f"archive/{CRAFTED_KEY}"] = _png(rng)
    objects[f"archive/{CORRUPT_KEY}"] = b"\x89PNG\r\n\x1a\n truncated"
    for key, data in objects.items():
        client.put_object(Bucket=bucket, Key=key, Body=data)
    config = ScoringConfig.model_validate(
        {
            "source": f"s3://{bucket}/archive",
            "table": TABLE,
            "catalog": CATALOG,
            "detector": DetectorConfig(backbone=BackboneSpec.tiny(), image_size=SIZE),
            "mode": "full",
            "run_id": RUN_ID,
            "run_date": RUN_DATE,
            "batch_size": 4,
            "rows_per_file": ROWS_PER_FILE,
            "commit_every": COMMIT_EVERY,
            "progress": False,
        }
    )
    return bucket, run_scoring(config)


def _query(sql: str, tmp_path: Path, *extra: str, engine: str = "duckdb") -> list[dict[str, Any]]:
    target = tmp_path / f"{engine}.parquet"
    argv = ["query", sql, *TABLE_ARGS, "--engine", engine, "-o", str(target), *extra]
    assert main(argv) == 0
    rows: list[dict[str, Any]] = pq.read_table(target).to_pylist()
    return rows


@pytest.mark.parametrize("engine", ["duckdb", "polars"])
def test_query_returns_the_scored_rows(
    scored: tuple[str, ScoringSummary], tmp_path: Path, engine: str
) -> None:
    _, summary = scored
    assert (summary.ok, summary.errors) == (N_IMAGES + 1, 1)
    committed = _results().read(run_rows(RUN_ID)).to_pylist()
    top = sorted((r for r in committed if r["status"] == "ok"), key=lambda r: -r["image_score"])
    sql = (
        "SELECT source_uri, image_score, mask_png FROM results WHERE status = 'ok' "
        "ORDER BY image_score DESC LIMIT 3"
    )
    got = _query(sql, tmp_path, "--run", RUN_ID, engine=engine)
    keys = ("source_uri", "image_score", "mask_png")
    assert got == [{k: r[k] for k in keys} for r in top[:3]]
    errors = _query(
        "SELECT source_uri, error_reason FROM results WHERE status = 'error'",
        tmp_path,
        engine=engine,
    )
    assert [e["source_uri"].rsplit("/", 1)[1] for e in errors] == [CORRUPT_KEY]
    assert errors[0]["error_reason"] == CORRUPT_IMAGE


def test_history_lists_the_runs_snapshots_and_as_of_reads_the_first(
    scored: tuple[str, ScoringSummary], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, summary = scored
    assert main(["table", "history", TABLE, "--catalog", CATALOG, "--json"]) == 0
    history = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(history) == summary.commits > 1
    assert {h["run_id"] for h in history} == {RUN_ID}
    assert [h["run_complete"] for h in history] == [False] * (len(history) - 1) + [True]
    assert history[-1]["total_rows"] == N_IMAGES + 2
    first = history[0]
    count = "SELECT count(*) AS n FROM results"
    for engine in ("duckdb", "polars"):
        got = _query(count, tmp_path, "--as-of", str(first["snapshot_id"]), engine=engine)
        assert got == [{"n": first["total_rows"]}]


def test_query_writes_csv_to_s3(
    scored: tuple[str, ScoringSummary], capsys: pytest.CaptureFixture[str]
) -> None:
    bucket, _ = scored
    target = f"s3://{bucket}/exports/count.csv"
    assert main(["query", "SELECT count(*) AS n FROM results", *TABLE_ARGS, "-o", target]) == 0
    assert capsys.readouterr().out == f"wrote 1 row to {target}\n"
    fs, path = filesystem(target)
    assert fs.cat_file(path).decode().splitlines() == ['"n"', str(N_IMAGES + 2)]


class _Page(HTMLParser):
    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text = ""
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text += data


@pytest.fixture(scope="module")
def report_file(
    scored: tuple[str, ScoringSummary], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The report of the run, written to S3 and read back, after deleting one source."""
    bucket, _ = scored
    rows = _results().read(run_rows(RUN_ID), columns=["source_uri", "image_score"]).to_pylist()
    scored_images = [r for r in rows if r["image_score"] is not None]
    deleted = max(  # the top one, apart from the crafted key (its overlay must render)
        (r for r in scored_images if not r["source_uri"].endswith(CRAFTED_KEY)),
        key=lambda r: r["image_score"],
    )
    fs, path = filesystem(deleted["source_uri"])
    fs.rm_file(path)
    target = f"s3://{bucket}/reports/{RUN_ID}.html"
    argv = ["report", *TABLE_ARGS, "--run", RUN_ID, "-o", target, "--top", "20"]
    assert main(argv) == 0
    fs, path = filesystem(target)
    local = tmp_path_factory.mktemp("report") / "report.html"
    local.write_bytes(fs.cat_file(path))
    return local


def test_report_escapes_and_survives_a_deleted_source(report_file: Path) -> None:
    html = report_file.read_text()
    page = _Page(html)
    assert not [t for t, _ in page.tags if t == "script"]
    assert CRAFTED_KEY in page.text and CRAFTED_KEY not in html  # shown as text, escaped
    images = [a["alt"] for t, a in page.tags if t == "img"]
    assert images.count("anomaly map") == N_IMAGES + 1
    assert images.count("overlay") == N_IMAGES  # the deleted source shows its mask only
    assert "source image not shown" in page.text
    assert CORRUPT_IMAGE in page.text
    assert "vip2clip.run-complete" in page.text and TABLE in page.text  # snapshot summary
    for secret in (
        TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
    ):
        assert secret not in html


def _chromium() -> str | None:
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


@pytest.mark.skipif(_chromium() is None, reason="no chromium (apt-get install chromium)")
def test_report_opens_in_headless_chromium(report_file: Path, tmp_path: Path) -> None:
    browser = _chromium()
    assert browser is not None
    flags = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={tmp_path / 'profile'}"]  # fmt: skip
    shot = tmp_path / "report.png"
    width, height = SCREENSHOT_SIZE
    url = report_file.resolve().as_uri()
    subprocess.run(
        [*flags, f"--screenshot={shot}", f"--window-size={width},{height}", url],
        check=True, capture_output=True, timeout=CHROMIUM_TIMEOUT_S,
    )  # fmt: skip
    with Image.open(shot) as image:
        assert image.size == SCREENSHOT_SIZE
        pixels = np.asarray(image.convert("RGB"), dtype=np.float64)
    assert pixels.std() > 10  # text, tables and pictures were painted, not a blank page
    dom = subprocess.run(
        [*flags, "--dump-dom", url],
        check=True, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S,
    ).stdout  # fmt: skip
    assert "<script" not in dom  # the crafted key stayed text in the rendered DOM
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in dom


def _data_objects(s3_server: Any, results: ResultsTable) -> set[str]:
    """Every object under the table's data folder, listed with boto3."""
    bucket, prefix = results.table.location_provider().data_path[len("s3://") :].split("/", 1)
    pages = (
        s3_server.client()
        .get_paginator("list_objects_v2")
        .paginate(Bucket=bucket, Prefix=f"{prefix}/")
    )
    return {f"s3://{bucket}/{o['Key']}" for page in pages for o in page.get("Contents", [])}


def test_maintenance_on_s3_compacts_expires_and_removes_orphans(
    scored: tuple[str, ScoringSummary],
    report_file: Path,  # reads the history first: this test rewrites it
    s3_server: Any,
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = _results()
    rows = sorted(results.read().to_pylist(), key=lambda r: r["source_uri"])
    small_files = len(results.data_files())
    assert small_files > 1
    orphan = write_data_files(results.read(run_rows(RUN_ID)).slice(0, 1), results.ref)
    assert {f.file_path for f in orphan} <= _data_objects(s3_server, results)

    assert main(["table", "maintain", TABLE, "--catalog", CATALOG, "--dry-run"]) == 0
    dry = capsys.readouterr().out.splitlines()
    assert dry[0].startswith(f"{TABLE}: compact: would merge {small_files} small files")
    assert dry[2] == f"{TABLE}: orphans: would remove 0 files (0 B)"  # all younger than 72 h

    report = run_maintenance(results, MaintenancePolicy(), now=LATER)
    assert report.compaction.replaced.files == small_files
    assert report.orphans.files == small_files + len(orphan)  # compacted away, and the orphan
    after = _results()
    assert len(after.data_files()) == 1 and len(after.snapshots()) == 1
    assert sorted(after.read().to_pylist(), key=lambda r: r["source_uri"]) == rows
    assert _data_objects(s3_server, after) == {f.file_path for f in after.data_files()}
