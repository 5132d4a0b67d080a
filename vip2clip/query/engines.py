"""SQL over one snapshot of the results table, through DuckDB or polars.

The table is exposed to SQL as a view named :data:`RESULTS_VIEW` over a pyarrow
dataset of exactly the data files of one Iceberg snapshot (main's head, or the
one ``--as-of`` names): readers see whole snapshots only, never files a running
job has written but not committed. ``--run`` prunes the files to the run's (by
their column bounds) and filters the rows exactly. The engines push projections
and filters into the dataset, which reads the files through the table's own
pyiceberg file IO, so DuckDB needs no extension and no network access of its own.

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
from typing import Any, Final

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds

from vip2clip.errors import QueryError, StorageError
from vip2clip.results import ResultsTable, TableRef, check_run_id, resolve_catalog
from vip2clip.results.filters import ALL_ROWS, run_rows

RESULTS_VIEW = "results"  # the table name queries use
BATCH_ROWS = 8_192  # rows per Arrow batch streamed out of an engine
DUCKDB_THREADS = 2  # scoring nodes run beside us; queries over results are I/O-bound anyway
POLARS_ENGINE: Final = "streaming"  # bounded memory while scanning; the result itself is collected


class Engine(enum.StrEnum):
    """SQL engines that can query a results table."""

    DUCKDB = "duckdb"
    POLARS = "polars"


def open_results(table: str, catalog: str | None = None) -> ResultsTable:
    """The results table ``namespace.table`` of pyiceberg catalog ``catalog``.

    ``catalog=None`` is pyiceberg's default catalog, else the embedded one.

    Raises:
        ConfigError: when the identifier is invalid or the catalog is not configured.
        StorageError: when the catalog cannot be opened or has no such table.
    """
    return ResultsTable.open(TableRef(resolve_catalog(catalog), table))


def opened(table: ResultsTable | TableRef) -> ResultsTable:
    """``table`` itself, or the table a :class:`TableRef` names, loaded from its catalog."""
    return table if isinstance(table, ResultsTable) else ResultsTable.open(table)


def results_dataset(
    results: ResultsTable, *, snapshot_id: int | None = None, run_id: str | None = None
) -> ds.Dataset:
    """A pyarrow dataset of one snapshot's rows (default: main's head), of one run or all.

    Raises:
        StorageError: when ``run_id`` has neither a snapshot nor rows in the table.
    """
    if run_id is None:
        return results.dataset(ALL_ROWS, snapshot_id)
    run_filter = run_rows(check_run_id(run_id))
    if run_id not in results.runs() and not results.data_files(run_filter, snapshot_id):
        raise StorageError(f"run {run_id!r} has no committed rows in table {_name(results)}")
    # Files are pruned by their run_id bounds; the dataset filter makes the rows exact.
    dataset: ds.Dataset = results.dataset(run_filter, snapshot_id)
    return dataset.filter(ds.field("run_id") == run_id)


@contextmanager
def duckdb_connection(dataset: ds.Dataset) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory, sandboxed DuckDB connection with ``dataset`` as view ``results``."""
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
    table: ResultsTable | TableRef,
    *,
    engine: Engine | str = Engine.DUCKDB,
    as_of: str | None = None,
    run_id: str | None = None,
) -> Iterator[pa.RecordBatchReader]:
    """Run ``sql`` against view ``results``; yield the rows as a stream of Arrow batches.

    ``table`` is an opened table or a reference to one; ``as_of`` is a snapshot id or
    an ISO time (default: main's head); ``run_id`` restricts the view to one run's rows.

    >>> results = open_results("vision.results")  # doctest: +SKIP
    >>> with run_query("SELECT count(*) AS n FROM results", results) as rows:  # doctest: +SKIP
    ...     table = rows.read_all()

    Raises:
        QueryError: when the SQL is invalid, fails, or is not a query.
        ConfigError: when ``as_of`` names no snapshot of the table.
        StorageError: when the run or the table's files cannot be found or read.
    """
    results = opened(table)
    snapshot_id = results.resolve_as_of(as_of)
    dataset = results_dataset(results, snapshot_id=snapshot_id, run_id=run_id)
    if Engine(engine) is Engine.POLARS:
        yield _polars_query(sql, dataset)
        return
    with duckdb_connection(dataset) as connection:
        yield duckdb_reader(connection, sql)


def query_table(
    sql: str,
    table: ResultsTable | TableRef,
    *,
    engine: Engine | str = Engine.DUCKDB,
    as_of: str | None = None,
    run_id: str | None = None,
) -> pa.Table:
    """Like :func:`run_query`, collected into one table."""
    with run_query(sql, table, engine=engine, as_of=as_of, run_id=run_id) as rows:
        return _read_all(rows)


def duckdb_reader(
    connection: duckdb.DuckDBPyConnection, sql: str, parameters: list[Any] | None = None
) -> pa.RecordBatchReader:
    """Execute ``sql`` (with ``?`` parameters) and stream its rows; errors become QueryError."""
    try:
        result = connection.sql(sql, params=parameters or None)
        if result is None:
            raise QueryError("the SQL statement returned no rows; only queries are supported")
        reader: pa.RecordBatchReader = result.to_arrow_reader(BATCH_ROWS)
        return _checked(reader)
    except duckdb.Error as exc:
        raise QueryError(f"DuckDB: {exc}") from None


def _polars_query(sql: str, dataset: ds.Dataset) -> pa.RecordBatchReader:
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


def _name(results: ResultsTable) -> str:
    return f"{results.ref.identifier} ({results.ref.catalog.describe()})"
