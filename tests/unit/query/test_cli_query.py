"""``vip2clip query``: printed tables, exports, time travel, one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.unit.query.builders import (
    CATALOG,
    NIGHT_1,
    NIGHT_2,
    SCORES_2,
    TABLE,
    TwoNights,
    results_catalog,
    two_nights,
)
from vip2clip.cli.main import main

COUNT_BY_RUN = "SELECT run_id, count(*) AS n FROM results GROUP BY run_id ORDER BY run_id"
TABLE_ARGS = ["--table", TABLE, "--catalog", CATALOG]


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNights]:
    root = tmp_path_factory.mktemp("cli-query")
    with results_catalog(root) as results:
        yield two_nights(results, str(root / "images"))


def test_prints_a_table(snapshots: TwoNights, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["query", COUNT_BY_RUN, *TABLE_ARGS]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["run_id", "n"]
    assert out[2].split() == [NIGHT_1[0], "6"]
    assert out[3].split() == [NIGHT_2[0], "7"]
    assert out[4] == "2 rows"


@pytest.mark.parametrize("engine", ["duckdb", "polars"])
def test_as_of_the_first_snapshot(
    snapshots: TwoNights, engine: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["query", COUNT_BY_RUN, *TABLE_ARGS, "--as-of", str(snapshots.night_1)]
    assert main([*argv, "--engine", engine]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split() for line in out[2:]] == [[NIGHT_1[0], "6"], ["1", "row"]]


def test_limit_and_masks_elided(snapshots: TwoNights, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "SELECT mask_png FROM results WHERE status = 'ok'"
    assert main(["query", sql, *TABLE_ARGS, "--limit", "2", "--engine", "polars"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5 and out[2].endswith("bytes>") and out[2].startswith("<")
    assert out[4].startswith("first 2 rows shown")


def test_writes_parquet_for_one_run(
    snapshots: TwoNights, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "ok.parquet"
    sql = "SELECT image_score FROM results WHERE status = 'ok' ORDER BY image_score"
    argv = ["query", sql, *TABLE_ARGS, "--run", NIGHT_2[0], "--output", str(target)]
    assert main(argv) == 0
    assert capsys.readouterr().out == f"wrote {len(SCORES_2)} rows to {target}\n"
    assert pq.read_table(target).column("image_score").to_pylist() == sorted(SCORES_2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["SELEC 1"], "vip2clip: error: DuckDB: Parser Error"),
        (["SELECT nope FROM results", "--engine", "polars"], "vip2clip: error: polars:"),
        (["SELECT 1", "--run", "bad/id"], "vip2clip: error: run id 'bad/id' is invalid"),
        (["SELECT 1", "--run", "missing"], "vip2clip: error: run 'missing' has no committed"),
        (["SELECT 1", "--as-of", "42"], f"vip2clip: error: table {TABLE} has no snapshot 42"),
        (["SELECT 1", "--output", "x.txt"], "vip2clip: error: cannot tell the format"),
        (["SELECT 1", "--table", "vision.none"], "vip2clip: error: table vision.none does not"),
        (["SELECT 1", "--table", "no-dots"], "vip2clip: error: table 'no-dots' is not an"),
        (["SELECT 1", "--catalog", "other"], "vip2clip: error: Iceberg catalog 'other' is not"),
    ],
)
def test_user_errors_are_one_line(
    snapshots: TwoNights, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", *TABLE_ARGS, *argv]) != 0
    captured = capsys.readouterr()
    assert captured.err.startswith(message)
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
