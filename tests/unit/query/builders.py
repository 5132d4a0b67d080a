"""Committed results tables for query and report tests, written through ResultsStore."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from vip2clip.results import CommitInfo, ResultsStore, conform, encode_mask, region_stats
from vip2clip.storage import StorageConfig, filesystem, join

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


def commit_run(
    uri: str,
    run_id: str,
    run_date: str,
    rows: list[Row],
    storage: StorageConfig | None = None,
    summary: dict[str, Any] | None = None,
    files: int = 1,
    row_group_size: int | None = None,
) -> CommitInfo:
    """Stage ``rows`` as ``files`` Parquet files and commit them as run ``run_id``."""
    store = ResultsStore(uri, storage)
    staging = store.prepare(run_id)
    for i in range(files):
        _write(staging, rows[i::files], storage, run_date, f"part-{i}.parquet", row_group_size)
    return store.commit(run_id, run_date, summary or {"run_id": run_id})


CRAFTED_KEY = "<script>alert(1)</script>.png"
NIGHT_1 = ("nightly-20261124", "2026-11-24")
NIGHT_2 = ("nightly-20261125", "2026-11-25")
UNCOMMITTED_RUN = "nightly-20261126"
SCORES_1 = (0.2, 0.9, 0.4, 0.7, 0.55)
SCORES_2 = (0.3, 0.6, 0.95, 0.1, 0.8)


def image_uri(prefix: str, i: int) -> str:
    """URI of the i-th scored image under ``prefix``."""
    return f"{prefix}/img-{i}.png"


def two_nights(uri: str, image_prefix: str, storage: StorageConfig | None = None) -> None:
    """Two committed nights over the same five images, plus errors and an uncommitted run.

    Night 1: scores :data:`SCORES_1`, one ``not_an_image`` error. Night 2: scores
    :data:`SCORES_2`, one ``object_missing`` error and the crafted key (``not_an_image``).
    A third run is staged but never committed: no reader may see it.
    """
    night_1 = [Row(image_uri(image_prefix, i), s) for i, s in enumerate(SCORES_1)]
    night_1.append(Row(f"{image_prefix}/broken.png", error_reason="not_an_image"))
    night_2 = [Row(image_uri(image_prefix, i), s) for i, s in enumerate(SCORES_2)]
    night_2.append(Row(f"{image_prefix}/gone.png", error_reason="object_missing"))
    night_2.append(
        Row(f"{image_prefix}/{CRAFTED_KEY}", error_reason="not_an_image", error_detail="<b>x</b>")
    )
    commit_run(uri, *NIGHT_1, night_1, storage)
    commit_run(uri, *NIGHT_2, night_2, storage)
    stage_only(uri, UNCOMMITTED_RUN, [Row(image_uri(image_prefix, 9), 0.99)], storage)


def stage_only(
    uri: str, run_id: str, rows: list[Row], storage: StorageConfig | None = None
) -> None:
    """Write rows into a run's staging folder without committing them."""
    store = ResultsStore(uri, storage)
    _write(store.prepare(run_id), rows, storage, "2026-11-26")


def _write(
    staging: str,
    rows: list[Row],
    storage: StorageConfig | None,
    run_date: str,
    name: str = "part-0.parquet",
    row_group_size: int | None = None,
) -> None:
    records = []
    for i, row in enumerate(rows):
        record: dict[str, Any] = {
            "source_uri": row.source_uri,
            "object_size": 1000 + i,
            "object_etag": f"etag-{i}",
            "model_id": row.model_id,
            "scored_at": dt.datetime.combine(dt.date.fromisoformat(run_date), SCORED_AT),
            **row.columns(seed=i),
        }
        records.append(record)
    names = sorted({k for r in records for k in r})
    table = conform({k: [r.get(k) for r in records] for k in names})
    fs, path = filesystem(join(staging, name), storage)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        pq.write_table(table, handle, row_group_size=row_group_size)
