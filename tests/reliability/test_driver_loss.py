"""Driver loss: the scoring job's driver process is SIGKILLed midway.

Nothing of the killed run may be visible to readers (``ResultsStore``, and DuckDB
over the documented Hive glob); re-running the same run id completes it, and an
incremental run after a second killed run scores exactly what is missing: every
input ends in the table exactly once, no gaps, no duplicates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.reliability.helpers import (
    DETECTOR,
    RUN_DATE,
    assert_exactly_once,
    kill_group,
    score_command,
    staged_parquet,
    start_driver,
    wait_until,
    write_images,
)
from vip2clip.results import ResultsStore
from vip2clip.scoring import ScoringConfig, run_scoring

pytestmark = pytest.mark.integration

N_FIRST = 32
N_NEW = 16
HIVE_GLOB = "run_date=*/run_id=*/*.parquet"  # docs/results-schema.md: what outside readers use


def _config(source: Path, output: Path, run_id: str) -> ScoringConfig:
    return ScoringConfig.model_validate(
        {
            "source": str(source),
            "output": str(output),
            "detector": DETECTOR,
            "mode": "incremental",
            "run_id": run_id,
            "run_date": RUN_DATE,
            "batch_size": 4,
            "progress": False,
        }
    )


def _kill_midway(ray_cluster: Any, source: Path, output: Path, run_id: str, log: Path) -> None:
    command = score_command(str(source), str(output), run_id, ray_cluster.address, full=False)
    proc = start_driver(command, ray_cluster.client_env(), log)
    staged_before = staged_parquet(output)
    try:
        wait_until(lambda: staged_parquet(output) > staged_before, proc, log)
    finally:
        kill_group(proc)


def _duckdb_run_ids(output: Path) -> list[str]:
    import duckdb

    files = sorted(str(p) for p in output.glob(HIVE_GLOB))
    if not files:
        return []
    rows = duckdb.connect().execute(
        "SELECT DISTINCT run_id FROM read_parquet(?, hive_partitioning = true)", [files]
    )
    return sorted(r[0] for r in rows.fetchall())


def _assert_invisible(output: Path, run_id: str) -> None:
    store = ResultsStore(str(output))
    assert store.manifest(run_id) is None
    assert store.committed_files(run_id) == []
    assert run_id not in store.read(columns=["run_id"]).column("run_id").to_pylist()
    assert run_id not in _duckdb_run_ids(output)
    assert not list(output.glob(f"run_date=*/run_id={run_id}"))


def test_killed_driver_leaves_nothing_and_reruns_complete(ray_cluster: Any, tmp_path: Path) -> None:
    source, output = tmp_path / "archive", tmp_path / "results"
    first = set(write_images(source, N_FIRST))

    _kill_midway(ray_cluster, source, output, "night-1", tmp_path / "night-1.log")
    assert staged_parquet(output) > 0  # partial output exists, but only in staging
    _assert_invisible(output, "night-1")

    summary = run_scoring(_config(source, output, "night-1"))  # same run id again
    assert (summary.ok, summary.errors, summary.skipped) == (N_FIRST, 0, 0)
    assert_exactly_once(str(output), "night-1", first)

    new = set(write_images(source / "new", N_NEW, seed=1))
    _kill_midway(ray_cluster, source, output, "night-2", tmp_path / "night-2.log")
    _assert_invisible(output, "night-2")

    summary = run_scoring(_config(source, output, "night-3"))  # the next incremental run
    assert (summary.ok, summary.skipped) == (N_NEW, N_FIRST)
    assert_exactly_once(str(output), "night-3", new)
    everything = ResultsStore(str(output)).read().column("source_uri").to_pylist()
    assert sorted(everything) == sorted(first | new)  # whole table: no gaps, no duplicates
    assert _duckdb_run_ids(output) == ["night-1", "night-3"]
