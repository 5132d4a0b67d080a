"""SQL over the committed rows of a results table, through DuckDB or polars.

The results store's manifests decide WHICH files are read: the table is
exposed to SQL as a view named :data:`RESULTS_VIEW` over a pyarrow dataset of
exactly the committed Parquet files (``_staging/`` and files of a commit in
progress are never visible). The same code serves local folders and ``s3://``
prefixes: pyarrow reads objects through :mod:`vip2clip.storage`, so DuckDB
needs no extension and no network access of its own.

DuckDB runs sandboxed: external file access is disabled after the view is
registered, so a query can read the results and nothing else, and cannot write
files (``COPY ... TO``); use ``--output`` to export. DuckDB streams its result
batch by batch; polars collects the (usually small) result before it is printed or
written, so prefer DuckDB for exports of many rows.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.dataset as ds

from vip2clip.errors import QueryError, StorageError
from vip2clip.results import ResultsStore
from vip2clip.storage import StorageConfig

if TYPE_CHECKING:
    import duckdb

RESULTS_VIEW = "results"  # the table name queries use
BATCH_ROWS = 8_192  # rows per Arrow batch streamed out of an engine
DUCKDB_THREADS = 2  # scoring nodes run beside us; queries over results are I/O-bound anyway
POLARS_ENGINE: Final = "streaming"  # bounded memory while scanning; the result itself is collected


class Engine(enum.StrEnum):
    """SQL engines that can query a results table."""

    DUCKDB = "duckdb"
    POLARS = "polars"


def results_dataset(
    results_uri: str, run_id: str | None = None, storage: StorageConfig | None = None
) -> ds.Dataset:
    """A pyarrow dataset of the committed rows (of one run, or of every run).

    Raises:
        StorageError: when ``run_id`` is not committed, or no run is committed at all
            (a mistyped URI would otherwise look like an empty table).
    """
    store = ResultsStore(results_uri, storage)
    if run_id is not None:
        if store.manifest(run_id) is None:
            raise StorageError(f"run {run_id!r} has no committed results in {results_uri}")
    elif not store.runs():
        raise StorageError(
            f"no committed runs in {results_uri}; is it the --output of 'vip2clip score'?"
        )
    return store.dataset(run_id)


@contextmanager
def duckdb_connection(dataset: ds.Dataset) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory, sandboxed DuckDB connection with ``dataset`` as view ``results``."""
    import duckdb

    connection = duckdb.connect(config={"threads": str(DUCKDB_THREADS)})
    try:
        connection.register(RESULTS_VIEW, dataset)
        connection.execute("SET enable_external_access = false")
        connection.execute("SET lock_configuration = true")
        yield connection
    finally:
        connection.close()


@contextmanager
def run_query(
    sql: str,
    results_uri: str,
    *,
    engine: Engine | str = Engine.DUCKDB,
    run_id: str | None = None,
    storage: StorageConfig | None = None,
) -> Iterator[pa.RecordBatchReader]:
    """Run ``sql`` against view ``results``; yield the rows as a stream of Arrow batches.

    >>> with run_query("SELECT count(*) AS n FROM results", "out/") as rows:  # doctest: +SKIP
    ...     table = rows.read_all()

    Raises:
        QueryError: when the SQL is invalid, fails, or is not a query.
        StorageError: when the results cannot be found or read.
    """
    dataset = results_dataset(results_uri, run_id, storage)
    if Engine(engine) is Engine.POLARS:
        yield _polars_query(sql, dataset)
        return
    with duckdb_connection(dataset) as connection:
        yield duckdb_reader(connection, sql)


def query_table(
    sql: str,
    results_uri: str,
    *,
    engine: Engine | str = Engine.DUCKDB,
    run_id: str | None = None,
    storage: StorageConfig | None = None,
) -> pa.Table:
    """Like :func:`run_query`, collected into one table."""
    with run_query(sql, results_uri, engine=engine, run_id=run_id, storage=storage) as rows:
        return _read_all(rows)


def duckdb_reader(
    connection: duckdb.DuckDBPyConnection, sql: str, parameters: list[Any] | None = None
) -> pa.RecordBatchReader:
    """Execute ``sql`` (with ``?`` parameters) and stream its rows; errors become QueryError."""
    import duckdb

    try:
        result = connection.sql(sql, params=parameters or None)
        if result is None:
            raise QueryError("the SQL statement returned no rows; only queries are supported")
        reader: pa.RecordBatchReader = result.to_arrow_reader(BATCH_ROWS)
        return _checked(reader)
    except duckdb.Error as exc:
        raise QueryError(f"DuckDB: {exc}") from None


def _polars_query(sql: str, dataset: ds.Dataset) -> pa.RecordBatchReader:
    import polars as pl

    try:
        frame = pl.SQLContext({RESULTS_VIEW: pl.scan_pyarrow_dataset(dataset)}).execute(sql)
        table = frame.collect(engine=POLARS_ENGINE).to_arrow()
    except (pl.exceptions.PolarsError, pa.ArrowException) as exc:
        raise QueryError(f"polars: {exc}") from None
    except OSError as exc:
        raise StorageError(f"could not read results: {exc}") from None
    return _streamed(table)


def _streamed(table: pa.Table) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(
        table.schema, table.to_batches(max_chunksize=BATCH_ROWS)
    )


def _checked(reader: pa.RecordBatchReader) -> pa.RecordBatchReader:
    """Wrap ``reader`` so engine errors raised while streaming also become QueryError."""
    import duckdb

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except (duckdb.Error, pa.ArrowException) as exc:
            raise QueryError(f"DuckDB: {exc}") from None
        except OSError as exc:
            raise StorageError(f"could not read results: {exc}") from None

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def _read_all(reader: pa.RecordBatchReader) -> pa.Table:
    return pa.Table.from_batches(list(reader), schema=reader.schema)
