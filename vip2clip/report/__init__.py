"""Static, self-contained HTML report of one scoring run.

>>> from vip2clip.report import build_report
>>> data, page = build_report("s3://bucket/results", "nightly-20261125", top=24)  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor

from vip2clip.report.data import DEFAULT_MAX_ERRORS, DEFAULT_TOP, ReportData, gather
from vip2clip.report.html import render
from vip2clip.report.images import Pictures, pictures
from vip2clip.storage import StorageConfig, write_bytes

IMAGE_THREADS = 8  # source images are fetched in parallel (I/O-bound)


def build_report(
    results_uri: str,
    run_id: str | None = None,
    *,
    top: int = DEFAULT_TOP,
    max_errors: int = DEFAULT_MAX_ERRORS,
    storage: StorageConfig | None = None,
    generated_at: dt.datetime | None = None,
) -> tuple[ReportData, str]:
    """The data and HTML page of the report of ``run_id`` (default: the latest run)."""
    data = gather(results_uri, run_id, top=top, max_errors=max_errors, storage=storage)
    return data, render(data, load_pictures(data, storage), generated_at)


def write_report(
    output_uri: str,
    results_uri: str,
    run_id: str | None = None,
    *,
    top: int = DEFAULT_TOP,
    max_errors: int = DEFAULT_MAX_ERRORS,
    storage: StorageConfig | None = None,
) -> ReportData:
    """Build the report and write it to ``output_uri`` (path or object URI)."""
    data, page = build_report(results_uri, run_id, top=top, max_errors=max_errors, storage=storage)
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
    "build_report",
    "gather",
    "load_pictures",
    "render",
    "write_report",
]
