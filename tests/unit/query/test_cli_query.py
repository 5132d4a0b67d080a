"""``vip2clip query``: printed tables, exports, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.unit.query.builders import NIGHT_2, SCORES_2, two_nights
from vip2clip.cli.main import main


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("cli-query")
    uri = str(root / "results")
    two_nights(uri, str(root / "images"))
    return uri


def test_prints_a_table(table: str, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "SELECT run_id, count(*) AS n FROM results GROUP BY run_id ORDER BY run_id"
    assert main(["query", sql, "--results", table]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["run_id", "n"]
    assert out[2].split() == ["nightly-20261124", "6"]
    assert out[3].split() == ["nightly-20261125", "7"]
    assert out[4] == "2 rows"


def test_limit_and_masks_elided(table: str, capsys: pytest.CaptureFixture[str]) -> None:
    sql = "SELECT mask_png FROM results WHERE status = 'ok'"
    assert main(["query", sql, "--results", table, "--limit", "2", "--engine", "polars"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 5 and out[2].endswith("bytes>") and out[2].startswith("<")
    assert out[4].startswith("first 2 rows shown")


def test_writes_parquet_for_one_run(
    table: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "ok.parquet"
    sql = "SELECT image_score FROM results WHERE status = 'ok' ORDER BY image_score"
    argv = ["query", sql, "--results", table, "--run", NIGHT_2[0], "--output", str(target)]
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
        (["SELECT 1", "--output", "x.txt"], "vip2clip: error: cannot tell the format"),
    ],
)
def test_user_errors_are_one_line(
    table: str, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["query", *argv, "--results", table]) != 0
    captured = capsys.readouterr()
    assert captured.err.startswith(message)
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err
