"""``vip2clip table history|maintain``: snapshot listings, maintenance output, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.query.builders import (
    CATALOG,
    NIGHT_1,
    NIGHT_2,
    TABLE,
    Row,
    commit_run,
    results_catalog,
    two_nights,
)
from vip2clip.cli.main import main

TABLE_ARGS = [TABLE, "--catalog", CATALOG]


def test_history_lists_one_snapshot_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with results_catalog(tmp_path) as results:
        snapshots = two_nights(results, "s3://b/images")
        commit_run(results, "night-3", "2026-11-26", [Row("a.png", 0.4)], final=False)
        assert main(["table", "history", *TABLE_ARGS]) == 0
        out = capsys.readouterr().out.splitlines()
        assert main(["table", "history", *TABLE_ARGS, "--json"]) == 0
        lines = capsys.readouterr().out.splitlines()
    assert out[0].split() == [
        "snapshot", "committed_at", "operation", "branch", "run", "model", "seq",
        "complete", "added", "total",
    ]  # fmt: skip
    assert out[2].split()[:1] + out[2].split()[2:] == [
        str(snapshots.night_1), "append", NIGHT_1[0], "model-a", "0", "True", "6", "6",
    ]  # fmt: skip
    assert out[-2].split()[2:] == ["append", "main", "night-3", "model-a", "0", "False", "1", "14"]
    assert out[-1] == "3 rows"
    rows = [json.loads(line) for line in lines]
    assert [r["run_id"] for r in rows] == [NIGHT_1[0], NIGHT_2[0], "night-3"]
    assert rows[1]["snapshot_id"] == snapshots.night_2 and rows[1]["added_rows"] == 7
    assert rows[2]["branch"] == "main" and rows[2]["run_complete"] is False


def test_maintain_prints_what_it_did(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with results_catalog(tmp_path) as results:
        for i in range(3):
            commit_run(results, "night-1", "2026-11-25", [Row(f"{i}.png", 0.5)], final=i == 2)
        rows = results.read().num_rows
        argv = ["table", "maintain", *TABLE_ARGS, "--compact-below-rows", "5"]
        assert main([*argv, "--dry-run"]) == 0
        dry = capsys.readouterr().out.splitlines()
        assert main(argv) == 0
        done = capsys.readouterr().out.splitlines()
        assert results.refresh().read().num_rows == rows
        assert len(results.data_files()) == 1
    assert dry[0].startswith(f"{TABLE}: compact: would merge 3 small files (")
    assert dry[1] == f"{TABLE}: expire: would expire 0 snapshots"  # all younger than 7 days
    assert done[0].startswith(f"{TABLE}: compact: merge 3 small files (")
    assert "into 1 file (" in done[0] and " in snapshot " in done[0]
    assert done[2] == f"{TABLE}: orphans: remove 0 files (0 B)"  # replaced files are recent


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["history", "vision.none"], "table vision.none does not exist"),
        (["maintain", "bad"], "table 'bad' is not an Iceberg identifier"),
        (["maintain", TABLE, "--orphan-age-hours", "0"], "Invalid value for '--orphan-age"),
    ],
)
def test_user_errors_are_one_line(
    tmp_path: Path, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with results_catalog(tmp_path):
        assert main(["table", *argv, "--catalog", CATALOG]) != 0
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
