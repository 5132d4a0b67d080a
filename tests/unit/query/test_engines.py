"""SQL over a snapshot of the results table with DuckDB and polars: right rows, committed
snapshots only, time travel, one run, a sandboxed DuckDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from tests.unit.query.builders import (
    CATALOG,
    CRAFTED_KEY,
    NIGHT_1,
    NIGHT_2,
    SCORES_1,
    SCORES_2,
    TABLE,
    TwoNights,
    image_uri,
    results_catalog,
    two_nights,
)
from vip2clip.errors import ConfigError, QueryError, StorageError
from vip2clip.query import Engine, open_results, query_table, run_query
from vip2clip.results import RESULTS_SCHEMA, ResultsTable

ENGINES = [Engine.DUCKDB, Engine.POLARS]
COUNT_BY_RUN = "SELECT run_id, count(*) AS n FROM results GROUP BY run_id ORDER BY run_id"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("query")


@pytest.fixture(scope="module")
def table(root: Path) -> Iterator[tuple[ResultsTable, TwoNights]]:
    with results_catalog(root) as results:
        yield results, two_nights(results, str(root / "images"))


@pytest.fixture
def results(table: tuple[ResultsTable, TwoNights]) -> ResultsTable:
    return open_results(TABLE, CATALOG)  # as the CLI opens it, fresh from the catalog


@pytest.mark.parametrize("engine", ENGINES)
def test_top_scores_of_one_night_match_the_committed_rows(
    results: ResultsTable, root: Path, engine: Engine
) -> None:
    sql = (
        "SELECT source_uri, image_score FROM results WHERE status = 'ok' "
        "ORDER BY image_score DESC LIMIT 3"
    )
    got = query_table(sql, results, engine=engine, run_id=NIGHT_2[0])
    expected = sorted(enumerate(SCORES_2), key=lambda p: -p[1])[:3]
    prefix = str(root / "images")
    assert got.column("source_uri").to_pylist() == [image_uri(prefix, i) for i, _ in expected]
    assert got.column("image_score").to_pylist() == [s for _, s in expected]


@pytest.mark.parametrize("engine", ENGINES)
def test_every_committed_run_with_typed_columns(results: ResultsTable, engine: Engine) -> None:
    sql = (
        "SELECT run_date, run_id, status, count(*) AS n FROM results "
        "GROUP BY run_date, run_id, status ORDER BY run_date, status"
    )
    got = query_table(sql, results, engine=engine).to_pylist()
    day_1, day_2 = (dt.date.fromisoformat(d) for d in (NIGHT_1[1], NIGHT_2[1]))
    assert [(r["run_date"], r["run_id"], r["status"], r["n"]) for r in got] == [
        (day_1, NIGHT_1[0], "error", 1),
        (day_1, NIGHT_1[0], "ok", len(SCORES_1)),
        (day_2, NIGHT_2[0], "error", 2),
        (day_2, NIGHT_2[0], "ok", len(SCORES_2)),
    ]  # the third run's data files were written, never committed: not there


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("as_of", ["snapshot", "time"])
def test_as_of_an_older_snapshot(
    table: tuple[ResultsTable, TwoNights], results: ResultsTable, engine: Engine, as_of: str
) -> None:
    night_1 = table[1].night_1
    committed = results.table.snapshot_by_id(night_1)
    assert committed is not None
    moment = dt.datetime.fromtimestamp(committed.timestamp_ms / 1000, tz=dt.UTC)
    value = str(night_1) if as_of == "snapshot" else moment.isoformat()
    got = query_table(COUNT_BY_RUN, results, engine=engine, as_of=value).to_pylist()
    assert got == [{"run_id": NIGHT_1[0], "n": len(SCORES_1) + 1}]


@pytest.mark.parametrize("engine", ENGINES)
def test_run_rows_are_exact(results: ResultsTable, engine: Engine) -> None:
    got = query_table(COUNT_BY_RUN, results, engine=engine, run_id=NIGHT_1[0]).to_pylist()
    assert got == [{"run_id": NIGHT_1[0], "n": len(SCORES_1) + 1}]
    at_night_1 = str(results.snapshots()[0].snapshot_id)
    empty = query_table(COUNT_BY_RUN, results, engine=engine, run_id=NIGHT_2[0], as_of=at_night_1)
    assert empty.num_rows == 0  # the run exists, but not yet in that snapshot


def test_select_star_has_the_results_schema(results: ResultsTable) -> None:
    got = query_table("SELECT * FROM results", results, run_id=NIGHT_1[0])
    assert got.schema.names == RESULTS_SCHEMA.names
    assert got.schema.field("mask_png").type == pa.binary()


def test_crafted_keys_come_back_verbatim(results: ResultsTable) -> None:
    got = query_table(
        "SELECT source_uri, error_detail FROM results WHERE error_reason = 'not_an_image' "
        "AND run_id = 'nightly-20261125'",
        results,
    )
    assert [u.rsplit("/images/", 1)[1] for u in got.column("source_uri").to_pylist()] == [
        CRAFTED_KEY
    ]
    assert got.column("error_detail").to_pylist() == ["<b>x</b>"]


def test_rows_stream_in_batches(results: ResultsTable) -> None:
    with run_query("SELECT * FROM range(20000) AS t(i)", results) as rows:
        batches = list(rows)
    assert len(batches) > 1
    assert sum(b.num_rows for b in batches) == 20000


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("sql", ["SELEC 1", "SELECT no_such_column FROM results"])
def test_bad_sql_is_a_query_error(results: ResultsTable, engine: Engine, sql: str) -> None:
    with pytest.raises(QueryError):
        query_table(sql, results, engine=engine)


@pytest.mark.parametrize(
    "sql",
    ["SELECT * FROM read_csv('/etc/passwd')", "SET enable_external_access = true"],
)
def test_duckdb_cannot_reach_other_files(results: ResultsTable, sql: str) -> None:
    with pytest.raises(QueryError):
        query_table(sql, results)


def test_duckdb_cannot_write_files(results: ResultsTable, tmp_path: Path) -> None:
    target = tmp_path / "leak.csv"
    with pytest.raises(QueryError):
        query_table(f"COPY (SELECT * FROM results) TO '{target}'", results)
    assert not target.exists()


def test_unknown_run_snapshot_table_and_catalog_are_typed_errors(results: ResultsTable) -> None:
    with pytest.raises(StorageError, match="run 'no-such-run' has no committed rows"):
        query_table("SELECT 1", results, run_id="no-such-run")
    with pytest.raises(ConfigError, match="has no snapshot 12345"):
        query_table("SELECT 1", results, as_of="12345")
    with pytest.raises(ConfigError, match="no snapshot at or before 2000-01-01"):
        query_table("SELECT 1", results, as_of="2000-01-01")
    with pytest.raises(ConfigError, match="neither a snapshot id nor an ISO time"):
        query_table("SELECT 1", results, as_of="yesterday")
    with pytest.raises(StorageError, match=r"vision\.nothing does not exist"):
        open_results("vision.nothing", CATALOG)
    with pytest.raises(ConfigError, match="catalog 'nope' is not configured"):
        open_results(TABLE, "nope")
