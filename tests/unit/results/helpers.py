"""Test helpers: result rows as a scoring run writes them, and results tables in tmp dirs."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa

from vip2clip.results import ResultsTable, TableRef, conform, encode_mask, write_data_files
from vip2clip.results import table as results_table

MAP_SIDE = 16
DAY = dt.date(2026, 11, 25)
IDENTIFIER = "vip2clip.results"


def result_rows(
    uris: list[str],
    *,
    run_id: str = "night-1",
    run_date: dt.date = DAY,
    model_id: str = "model-a",
    status: str = "ok",
    error_reason: str | None = None,
    etag: str = "etag-1",
    seed: int = 0,
) -> pa.Table:
    """A RESULTS_SCHEMA table with one plausible row per URI, all of one run."""
    rng = np.random.default_rng(seed)
    n = len(uris)
    ok = status == "ok"
    now = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
    masks = [encode_mask(rng.random((MAP_SIDE, MAP_SIDE))) if ok else None for _ in uris]
    return conform(
        {
            "run_id": [run_id] * n,
            "run_date": [run_date] * n,
            "source_uri": uris,
            "object_size": [100 + i for i in range(n)],
            "object_etag": [etag] * n,
            "model_id": [model_id] * n,
            "image_score": rng.random(n).tolist() if ok else [None] * n,
            "mask_png": masks,
            "status": [status] * n,
            "error_reason": [error_reason] * n,
            "scored_at": [now] * n,
        }
    )


def uris(prefix: str, count: int, start: int = 0) -> list[str]:
    """``count`` object URIs under ``prefix``."""
    return [f"{prefix}/img-{i:04d}.png" for i in range(start, start + count)]


def run_properties(
    run_id: str, *, final: bool = False, model_id: str = "model-a"
) -> dict[str, str]:
    """Snapshot summary properties as the scoring driver writes them."""
    return {
        results_table.RUN_ID: run_id,
        results_table.MODEL_ID: model_id,
        results_table.RUN_COMPLETE: "true" if final else "false",
    }


def commit_rows(
    results: ResultsTable,
    rows: pa.Table,
    *,
    final: bool = False,
    branch: str = results_table.MAIN,
) -> int:
    """Write ``rows`` (one run) as data files and commit them in one snapshot."""
    run_id = str(rows.column("run_id")[0])
    model_id = str(rows.column("model_id")[0])
    files = write_data_files(rows, results.ref)
    properties = run_properties(run_id, final=final, model_id=model_id)
    return results.commit(files, properties, branch)


def open_table(ref: TableRef) -> ResultsTable:
    """The results table of ``ref``, created on first use."""
    return ResultsTable.open(ref, create=True)


__all__ = [
    "DAY",
    "IDENTIFIER",
    "commit_rows",
    "open_table",
    "result_rows",
    "run_properties",
    "uris",
]
