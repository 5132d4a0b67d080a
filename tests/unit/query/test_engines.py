"""SQL over committed results with DuckDB and polars: right rows, committed files only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest

from tests.unit.query.builders import (
    CRAFTED_KEY,
    NIGHT_1,
    NIGHT_2,
    SCORES_1,
    SCORES_2,
    Row,
    commit_run,
    image_uri,
    two_nights,
)
from vip2clip.errors import QueryError, StorageError
from vip2clip.query import Engine, query_table, run_query
from vip2clip.results import RESULTS_SCHEMA

ENGINES = [Engine.DUCKDB, Engine.POLARS]


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("query")
    uri = str(root / "results")
    two_nights(uri, str(root / "images"))
    return uri


@pytest.mark.parametrize("engine", ENGINES)
def test_top_scores_of_one_night_match_the_committed_rows(table: str, engine: Engine) -> None:
    sql = (
        "SELECT source_uri, image_score FROM results WHERE status = 'ok' "
        "ORDER BY image_score DESC LIMIT 3"
    )
    got = query_table(sql, table, engine=engine, run_id=NIGHT_2[0])
    prefix = table.rsplit("/", 1)[0] + "/images"
    expected = sorted(enumerate(SCORES_2), key=lambda p: -p[1])[:3]
    assert got.column("source_uri").to_pylist() == [image_uri(prefix, i) for i, _ in expected]
    assert got.column("image_score").to_pylist() == [s for _, s in expected]


@pytest.mark.parametrize("engine", ENGINES)
def test_all_runs_are_visible_with_typed_partition_columns(table: str, engine: Engine) -> None:
    sql = (
        "SELECT run_date, run_id, status, count(*) AS n FROM results "
        "GROUP BY run_date, run_id, status ORDER BY run_date, status"
    )
    got = query_table(sql, table, engine=engine).to_pylist()
    day_1, day_2 = (dt.date.fromisoformat(d) for d in (NIGHT_1[1], NIGHT_2[1]))
    assert [(r["run_date"], r["run_id"], r["status"], r["n"]) for r in got] == [
        (day_1, NIGHT_1[0], "error", 1),
        (day_1, NIGHT_1[0], "ok", len(SCORES_1)),
        (day_2, NIGHT_2[0], "error", 2),
        (day_2, NIGHT_2[0], "ok", len(SCORES_2)),
    ]  # the staged, uncommitted third run is not there


def test_select_star_has_the_results_schema(table: str) -> None:
    got = query_table("SELECT * FROM results", table, run_id=NIGHT_1[0])
    assert got.schema.names == RESULTS_SCHEMA.names
    assert got.schema.field("mask_png").type == pa.binary()


def test_crafted_keys_come_back_verbatim(table: str) -> None:
    got = query_table(
        "SELECT source_uri, error_detail FROM results WHERE error_reason = 'not_an_image' "
        "AND run_id = 'nightly-20261125'",
        table,
    )
    assert [u.rsplit("/images/", 1)[1] for u in got.column("source_uri").to_pylist()] == [
        CRAFTED_KEY
    ]
    assert got.column("error_detail").to_pylist() == ["<b>x</b>"]


def test_files_outside_the_manifest_are_invisible(tmp_path: Path) -> None:
    uri = str(tmp_path / "results")
    info = commit_run(uri, "run-a", "2026-11-25", [Row("a.png", 0.5)])
    stray = Path(info.files[0]).with_name("part-stray-00000.parquet")
    stray.write_bytes(Path(info.files[0]).read_bytes())  # e.g. an orphan of a crashed commit
    assert query_table("SELECT count(*) AS n FROM results", uri).column("n").to_pylist() == [1]


def test_rows_stream_in_batches(table: str) -> None:
    with run_query("SELECT * FROM range(20000) AS t(i)", table) as rows:
        batches = list(rows)
    assert len(batches) > 1
    assert sum(b.num_rows for b in batches) == 20000


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("sql", ["SELEC 1", "SELECT no_such_column FROM results"])
def test_bad_sql_is_a_query_error(table: str, engine: Engine, sql: str) -> None:
    with pytest.raises(QueryError):
        query_table(sql, table, engine=engine)


@pytest.mark.parametrize(
    "sql",
    ["SELECT * FROM read_csv('/etc/passwd')", "SET enable_external_access = true"],
)
def test_duckdb_cannot_reach_other_files(table: str, sql: str) -> None:
    with pytest.raises(QueryError):
        query_table(sql, table)


def test_duckdb_cannot_write_files(table: str, tmp_path: Path) -> None:
    target = tmp_path / "leak.csv"
    with pytest.raises(QueryError):
        query_table(f"COPY (SELECT * FROM results) TO '{target}'", table)
    assert not target.exists()


def test_unknown_run_and_empty_table_are_storage_errors(table: str, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no-such-run"):
        query_table("SELECT 1", table, run_id="no-such-run")
    with pytest.raises(StorageError, match="no committed runs"):
        query_table("SELECT 1", str(tmp_path / "nothing"))
