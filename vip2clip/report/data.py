"""What a run report shows, gathered with a few SQL queries over the run's committed rows.

The rows are those of the run in the table's current snapshot; the run's metadata is
the summary of its latest snapshot on main (run id, model, counts, source), redacted.
Memory follows the report, not the run: scores are histogrammed and errors counted by
the engine (reading light columns only); only the top-N rows, their masks
(:mod:`vip2clip.report.top`) and a bounded error list are fetched.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pyiceberg.table.snapshots import ancestors_of

from vip2clip.errors import StorageError
from vip2clip.query import duckdb_connection, duckdb_reader, opened, results_dataset
from vip2clip.report.top import top_rows
from vip2clip.results import ResultsTable, RunState, SnapshotInfo, TableRef
from vip2clip.storage import redact_userinfo

DEFAULT_TOP = 24
DEFAULT_MAX_ERRORS = 200
HISTOGRAM_BINS = 20  # over [0, 1], the range of image scores
REDACTED = "[redacted]"
# Summary keys whose values are never shown, should a writer ever put a secret there.
_SECRET_KEY = re.compile(r"secret|token|password|passwd|credential|access_key|auth", re.I)

_HISTOGRAM_SQL = """
SELECT least(greatest(floor(image_score * ?), 0), ? - 1)::INTEGER AS bin, count(*) AS n
FROM results WHERE status = 'ok' AND image_score IS NOT NULL GROUP BY bin
"""
_COUNTS_SQL = """
SELECT count(*) AS total,
       count(*) FILTER (WHERE status = 'ok') AS ok,
       count(*) FILTER (WHERE status = 'error') AS errors,
       count(*) FILTER (WHERE is_anomalous) AS anomalous,
       list(DISTINCT model_id ORDER BY model_id) AS model_ids,
       list(DISTINCT image_threshold ORDER BY image_threshold)
           FILTER (WHERE image_threshold IS NOT NULL) AS image_thresholds,
       list(DISTINCT pixel_threshold ORDER BY pixel_threshold)
           FILTER (WHERE pixel_threshold IS NOT NULL) AS pixel_thresholds,
       min(scored_at) AS first_scored_at, max(scored_at) AS last_scored_at,
       min(run_date) AS run_date
FROM results
"""
_ERROR_COUNTS_SQL = """
SELECT coalesce(error_reason, 'unknown') AS reason, count(*) AS n
FROM results WHERE status = 'error' GROUP BY ALL ORDER BY n DESC, reason
"""
_ERRORS_SQL = """
SELECT source_uri, error_reason, error_detail FROM results WHERE status = 'error'
ORDER BY error_reason, source_uri LIMIT ?
"""


@dataclass(frozen=True)
class Anomaly:
    """One of the top-scored images."""

    rank: int
    source_uri: str
    image_score: float
    is_anomalous: bool | None
    mask_png: bytes | None
    max_pixel_score: float | None
    anomalous_area_fraction: float | None
    bbox: tuple[int, int, int, int] | None  # x0, y0, x1, y1 in original pixels (half-open)
    image_size: tuple[int, int] | None  # original (width, height)
    model_id: str


@dataclass(frozen=True)
class ErrorRow:
    """One object that could not be scored."""

    source_uri: str
    reason: str
    detail: str


@dataclass(frozen=True)
class RunCounts:
    """Totals over the run's rows."""

    total: int
    ok: int
    errors: int
    anomalous: int
    model_ids: tuple[str, ...]
    image_thresholds: tuple[float, ...]
    pixel_thresholds: tuple[float, ...]
    first_scored_at: dt.datetime | None
    last_scored_at: dt.datetime | None


@dataclass(frozen=True)
class RunInfo:
    """Which run the report shows, and the snapshot it was read from."""

    run_id: str
    run_date: dt.date | None  # None for a run that committed no rows
    model_id: str | None  # from the run's snapshot summary
    snapshot_id: int | None  # the table snapshot the rows were read from
    committed_at: dt.datetime | None  # of the run's latest snapshot (None once expired)
    state: RunState  # complete, in progress (resumable) or being replaced


@dataclass(frozen=True)
class ReportData:
    """Everything the HTML report renders (before any image is loaded)."""

    table: str  # namespace.table (catalog)
    run: RunInfo
    counts: RunCounts
    histogram: tuple[int, ...]  # image-score counts over HISTOGRAM_BINS equal bins of [0, 1]
    top: tuple[Anomaly, ...]
    error_counts: tuple[tuple[str, int], ...]
    errors: tuple[ErrorRow, ...]
    summary: dict[str, Any] = field(default_factory=dict)  # redacted snapshot summary

    @property
    def errors_not_listed(self) -> int:
        """Error rows beyond the listed ones."""
        return self.counts.errors - len(self.errors)


def gather(
    table: ResultsTable | TableRef,
    run_id: str | None = None,
    *,
    top: int = DEFAULT_TOP,
    max_errors: int = DEFAULT_MAX_ERRORS,
) -> ReportData:
    """Query what the report of ``run_id`` (default: the latest run on main) shows.

    Raises:
        StorageError: when the run (or any run) is not in the table.
    """
    results = opened(table)
    run_id = run_id if run_id is not None else _latest_run(results)
    snapshot_id = results.snapshot_id()
    dataset = results_dataset(results, snapshot_id=snapshot_id, run_id=run_id)
    with duckdb_connection(dataset) as connection:

        def rows(sql: str, *parameters: Any) -> list[dict[str, Any]]:
            got: pa.Table = duckdb_reader(connection, sql, list(parameters)).read_all()
            return got.to_pylist()

        totals = rows(_COUNTS_SQL)[0]
        histogram = [0] * HISTOGRAM_BINS
        for row in rows(_HISTOGRAM_SQL, HISTOGRAM_BINS, HISTOGRAM_BINS):
            histogram[row["bin"]] = row["n"]
        error_counts = tuple((r["reason"], r["n"]) for r in rows(_ERROR_COUNTS_SQL))
        errors = tuple(_error(r) for r in rows(_ERRORS_SQL, max_errors))
    best = top_rows(results, run_id, top, snapshot_id)
    return ReportData(
        table=f"{results.ref.identifier} ({results.ref.catalog.describe()})",
        run=_run_info(results, run_id, totals["run_date"], snapshot_id),
        counts=_counts(totals),
        histogram=tuple(histogram),
        top=tuple(_anomaly(i + 1, r) for i, r in enumerate(best)),
        error_counts=error_counts,
        errors=errors,
        summary=redact(results.run_summary(run_id)),
    )


def redact(value: Any) -> Any:
    """Hide values under secret-looking keys and ``user:password@`` parts of URIs."""
    if isinstance(value, dict):
        return {
            str(k): REDACTED if _SECRET_KEY.search(str(k)) else redact(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        return redact_userinfo(value)
    return value


def _latest_run(results: ResultsTable) -> str:
    runs = results.runs()
    if not runs:
        raise StorageError(
            f"table {results.ref.identifier} has no run in its snapshot history; nothing to "
            "report (name an older run with --run)"
        )
    return runs[-1]


def _run_info(
    results: ResultsTable, run_id: str, run_date: dt.date | None, snapshot_id: int | None
) -> RunInfo:
    table = results.table
    main = {s.snapshot_id for s in ancestors_of(table.current_snapshot(), table.metadata)}
    ours = [s for s in results.snapshots() if s.run_id == run_id and s.snapshot_id in main]
    latest: SnapshotInfo | None = ours[-1] if ours else None
    return RunInfo(
        run_id=run_id,
        run_date=run_date,
        model_id=latest.model_id if latest else None,
        snapshot_id=snapshot_id,
        committed_at=latest.committed_at if latest else None,
        state=results.run_state(run_id),
    )


def _counts(row: dict[str, Any]) -> RunCounts:
    return RunCounts(
        total=row["total"],
        ok=row["ok"],
        errors=row["errors"],
        anomalous=row["anomalous"],
        model_ids=tuple(row["model_ids"] or ()),
        image_thresholds=tuple(row["image_thresholds"] or ()),
        pixel_thresholds=tuple(row["pixel_thresholds"] or ()),
        first_scored_at=row["first_scored_at"],
        last_scored_at=row["last_scored_at"],
    )


def _anomaly(rank: int, row: dict[str, Any]) -> Anomaly:
    corners = (row["bbox_x0"], row["bbox_y0"], row["bbox_x1"], row["bbox_y1"])
    size = (row["image_width"], row["image_height"])
    return Anomaly(
        rank=rank,
        source_uri=row["source_uri"],
        image_score=row["image_score"],
        is_anomalous=row["is_anomalous"],
        mask_png=row["mask_png"],
        max_pixel_score=row["max_pixel_score"],
        anomalous_area_fraction=row["anomalous_area_fraction"],
        bbox=None if None in corners else (corners[0], corners[1], corners[2], corners[3]),
        image_size=None if None in size else (size[0], size[1]),
        model_id=row["model_id"],
    )


def _error(row: dict[str, Any]) -> ErrorRow:
    return ErrorRow(
        source_uri=row["source_uri"],
        reason=row["error_reason"] or "unknown",
        detail=row["error_detail"] or "",
    )
