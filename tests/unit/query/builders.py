"""Results tables for query and report tests: a pyiceberg SQLite catalog in a tmp folder,
configured the pyiceberg way (``PYICEBERG_CATALOG__QTEST__*``), filled as scoring does it
(``write_data_files`` in the writers, ``ResultsTable.commit`` on the driver)."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from tests.fixtures.iceberg import catalog_env
from vip2clip.results import (
    ResultsTable,
    TableRef,
    conform,
    encode_mask,
    region_stats,
    resolve_catalog,
    write_data_files,
)
from vip2clip.results import table as results_table
from vip2clip.results.catalog import HOME_ENV

CATALOG = "qtest"
TABLE = "vision.results"
MAP_SIDE = 32
SCORED_AT = dt.time(2, 0, tzinfo=dt.UTC)  # on the run date
IMAGE_THRESHOLD = 0.5
PIXEL_THRESHOLD = 0.5


@dataclass(frozen=True)
class Row:
    """One result row, as the scoring pipeline would write it."""

    source_uri: str
    image_score: float | None = None
    error_reason: str | None = None
    error_detail: str | None = None
    size: tuple[int, int] = (256, 192)  # original (width, height)
    model_id: str = "model-a"

    def columns(self, seed: int) -> dict[str, Any]:
        if self.error_reason is not None:
            return {
                "status": "error",
                "error_reason": self.error_reason,
                "error_detail": self.error_detail,
            }
        assert self.image_score is not None
        anomaly_map = _blob_map(self.image_score, seed)
        return {
            "status": "ok",
            "image_score": self.image_score,
            "is_anomalous": self.image_score >= IMAGE_THRESHOLD,
            "image_threshold": IMAGE_THRESHOLD,
            "pixel_threshold": PIXEL_THRESHOLD,
            "mask_png": encode_mask(anomaly_map),
            "mask_height": MAP_SIDE,
            "mask_width": MAP_SIDE,
            **asdict(region_stats(anomaly_map, PIXEL_THRESHOLD, self.size)),
            "image_width": self.size[0],
            "image_height": self.size[1],
        }


def _blob_map(peak: float, seed: int) -> np.ndarray:
    """A smooth map with one bump of height ``peak`` at a seed-dependent place."""
    rng = np.random.default_rng(seed)
    cy, cx = rng.uniform(0.25, 0.75, size=2) * MAP_SIDE
    yy, xx = np.mgrid[0:MAP_SIDE, 0:MAP_SIDE]
    bump = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (MAP_SIDE / 8) ** 2))
    return np.asarray(peak * bump, dtype=np.float64)


@contextmanager
def results_catalog(root: Path) -> Iterator[ResultsTable]:
    """Configure catalog :data:`CATALOG` under ``root`` (and nothing else) and yield the
    empty table :data:`TABLE` in it; the configuration lasts until the block ends."""
    warehouse = root / "warehouse"
    warehouse.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("PYICEBERG_")]:
            patch.delenv(key)
        patch.setenv("PYICEBERG_HOME", str(root))  # no user .pyiceberg.yaml
        patch.setenv("HOME", str(root))
        patch.setenv(HOME_ENV, str(root / "embedded"))
        for key, value in catalog_env(
            CATALOG, root / "catalog.db", warehouse.as_uri(), None
        ).items():
            patch.setenv(key, value)
        yield ResultsTable.open(TableRef(resolve_catalog(CATALOG), TABLE), create=True)


def result_table(run_id: str, run_date: str, rows: list[Row]) -> pa.Table:
    """``rows`` of run ``run_id`` as a RESULTS_SCHEMA table."""
    records = []
    for i, row in enumerate(rows):
        records.append(
            {
                "run_id": run_id,
                "run_date": dt.date.fromisoformat(run_date),
                "source_uri": row.source_uri,
                "object_size": 1000 + i,
                "object_etag": f"etag-{i}",
                "model_id": row.model_id,
                "scored_at": dt.datetime.combine(dt.date.fromisoformat(run_date), SCORED_AT),
                **row.columns(seed=i),
            }
        )
    names = sorted({k for r in records for k in r})
    return conform({k: [r.get(k) for r in records] for k in names})


def run_properties(
    run_id: str, run_date: str, model_id: str = "model-a", *, final: bool = True, seq: int = 0
) -> dict[str, str]:
    """Snapshot summary properties as the scoring driver writes them."""
    return {
        results_table.RUN_ID: run_id,
        results_table.RUN_DATE: run_date,
        results_table.MODEL_ID: model_id,
        results_table.COMMIT_SEQ: str(seq),
        results_table.RUN_COMPLETE: "true" if final else "false",
    }


def commit_run(
    results: ResultsTable,
    run_id: str,
    run_date: str,
    rows: list[Row],
    *,
    files: int = 1,
    summary: dict[str, str] | None = None,
    final: bool = True,
) -> int:
    """Write ``rows`` as ``files`` data files and commit them as one snapshot of ``run_id``."""
    table = result_table(run_id, run_date, rows)
    data_files = [
        f for i in range(files) for f in write_data_files(_every(table, i, files), results.ref)
    ]
    properties = {**run_properties(run_id, run_date, final=final), **(summary or {})}
    return results.commit(data_files, properties)


def _every(table: pa.Table, start: int, step: int) -> pa.Table:
    return table.take(list(range(start, table.num_rows, step)))


CRAFTED_KEY = "<script>alert(1)</script>.png"
NIGHT_1 = ("nightly-20261124", "2026-11-24")
NIGHT_2 = ("nightly-20261125", "2026-11-25")
UNCOMMITTED_RUN = "nightly-20261126"
SCORES_1 = (0.2, 0.9, 0.4, 0.7, 0.55)
SCORES_2 = (0.3, 0.6, 0.95, 0.1, 0.8)


def image_uri(prefix: str, i: int) -> str:
    """URI of the i-th scored image under ``prefix``."""
    return f"{prefix}/img-{i}.png"


@dataclass(frozen=True)
class TwoNights:
    """Snapshot ids of :func:`two_nights`."""

    night_1: int
    night_2: int


def two_nights(results: ResultsTable, image_prefix: str) -> TwoNights:
    """Two committed nights over the same five images, plus errors and uncommitted files.

    Night 1: scores :data:`SCORES_1`, one ``not_an_image`` error. Night 2: scores
    :data:`SCORES_2`, one ``object_missing`` error and the crafted key (``not_an_image``),
    in two data files. A third run's data files are written but never committed: no
    reader may see them.
    """
    night_1 = [Row(image_uri(image_prefix, i), s) for i, s in enumerate(SCORES_1)]
    night_1.append(Row(f"{image_prefix}/broken.png", error_reason="not_an_image"))
    night_2 = [Row(image_uri(image_prefix, i), s) for i, s in enumerate(SCORES_2)]
    night_2.append(Row(f"{image_prefix}/gone.png", error_reason="object_missing"))
    night_2.append(
        Row(f"{image_prefix}/{CRAFTED_KEY}", error_reason="not_an_image", error_detail="<b>x</b>")
    )
    first = commit_run(results, *NIGHT_1, night_1)
    second = commit_run(results, *NIGHT_2, night_2, files=2)
    uncommitted = result_table(
        UNCOMMITTED_RUN, "2026-11-26", [Row(image_uri(image_prefix, 9), 0.99)]
    )
    write_data_files(uncommitted, results.ref)
    return TwoNights(first, second)
