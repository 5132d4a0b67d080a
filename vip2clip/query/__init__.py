"""SQL over a snapshot of the results table (DuckDB or polars), terminal tables, CSV/Parquet export.

>>> from vip2clip.query import open_results, query_table
>>> results = open_results("vision.results", catalog="production")  # doctest: +SKIP
>>> query_table("SELECT count(*) AS n FROM results", results)  # doctest: +SKIP
"""

from vip2clip.query.display import DEFAULT_MAX_ROWS, Preview, render_preview, take_preview
from vip2clip.query.engines import (
    RESULTS_VIEW,
    Engine,
    duckdb_connection,
    duckdb_reader,
    open_results,
    opened,
    query_table,
    results_dataset,
    run_query,
)
from vip2clip.query.output import OutputFormat, format_for, write_rows

__all__ = [
    "DEFAULT_MAX_ROWS",
    "RESULTS_VIEW",
    "Engine",
    "OutputFormat",
    "Preview",
    "duckdb_connection",
    "duckdb_reader",
    "format_for",
    "open_results",
    "opened",
    "query_table",
    "render_preview",
    "results_dataset",
    "run_query",
    "take_preview",
    "write_rows",
]
