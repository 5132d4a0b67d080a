"""Static, self-contained HTML report of one scoring run.

>>> from vip2clip.query import open_results
>>> from vip2clip.report import build_report
>>> data, page = build_report(open_results("vision.results"), "nightly-20261125")  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

from vip2clip.report.data import DEFAULT_MAX_ERRORS, DEFAULT_TOP, ReportData, RunInfo, gather
from vip2clip.report.html import render
from vip2clip.report.images import Pictures, pictures
from vip2clip.results import ResultsTable, TableRef
from vip2clip.storage import StorageConfig, write_bytes

IMAGE_THREADS = 8  # source images are fetched in parallel (I/O-bound)


def build_report(
    table: ResultsTable | TableRef,
    run_id: str | None = None,
    *,
    top: int = DEFAULT_TOP,
    max_errors: int = DEFAULT_MAX_ERRORS,
    storage: StorageConfig | None = None,
    generated_at: dt.datetime | None = None,
) -> tuple[ReportData, str]:
    """The data and HTML page of the report of ``run_id`` (default: the latest run on main).

    ``storage`` reads the source images shown next to their masks.
    """
    data = gather(table, run_id, top=top, max_errors=max_errors)
    return data, render(data, load_pictures(data, storage), generated_at)


def write_report(
    output_uri: str,
    table: ResultsTable | TableRef,
    run_id: str | None = None,
    *,
    top: int = DEFAULT_TOP,
    max_errors: int = DEFAULT_MAX_ERRORS,
    storage: StorageConfig | None = None,
) -> ReportData:
    """Build the report and write it to ``output_uri`` (path or object URI)."""
    data, page = build_report(table, run_id, top=top, max_errors=max_errors, storage=storage)
    write_bytes(output_uri, page.encode("utf-8"), storage)
    return data


def load_pictures(data: ReportData, storage: StorageConfig | None = None) -> list[Pictures]:
    """Overlay and mask pictures of every top anomaly, fetched in parallel."""
    if not data.top:
        return []
    with ThreadPoolExecutor(max_workers=min(IMAGE_THREADS, len(data.top))) as pool:
        return list(
            pool.map(
                lambda a: pictures(a.source_uri, a.mask_png, a.bbox, a.image_size, storage),
                data.top,
            )
        )


__all__ = [
    "DEFAULT_MAX_ERRORS",
    "DEFAULT_TOP",
    "Pictures",
    "ReportData",
    "RunInfo",
    "build_report",
    "gather",
    "load_pictures",
    "render",
    "write_report",
]
