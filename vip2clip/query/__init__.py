"""SQL over committed results (DuckDB or polars), terminal tables, CSV/Parquet export.

>>> from vip2clip.query import query_table
>>> query_table("SELECT count(*) AS n FROM results", "s3://bucket/results")  # doctest: +SKIP
"""

from vip2clip.query.display import DEFAULT_MAX_ROWS, Preview, render_preview, take_preview
from vip2clip.query.engines import (
    RESULTS_VIEW,
    Engine,
    duckdb_connection,
    duckdb_reader,
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
    "query_table",
    "render_preview",
    "results_dataset",
    "run_query",
    "take_preview",
    "write_rows",
]
