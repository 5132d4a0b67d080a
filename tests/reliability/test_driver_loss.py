"""Driver loss: the scoring job's driver is SIGKILLed (its whole process group) mid-run.

The driver (``jobs/score.py ... --commit-every 4``) commits a snapshot every few
rows. While it runs, a reader loops over the table and must only ever see whole
committed snapshots. It is killed once at least two snapshots of its run are
committed; then readers (pyiceberg, and DuckDB over ``ResultsTable.dataset()``)
see exactly the committed snapshot, the rows written since the last commit are
orphan files nobody reads, and the same command again resumes the run: it scores
only the remainder, and every listed object ends in the run exactly once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest
from pyiceberg.expressions import EqualTo

from tests.fixtures.iceberg import IcebergCatalog
from tests.reliability.helpers import (
    assert_exactly_once,
    driver_env,
    finish,
    json_summary,
    kill_group,
    run_snapshots,
    score_command,
    start_driver,
    tail,
    wait_until,
    write_images,
)
from vip2clip.errors import StorageError
from vip2clip.results import ResultsTable, RunState

pytestmark = pytest.mark.integration

N_IMAGES = 48
COMMIT_EVERY = 4  # rows per snapshot: one data file of rows_per_file=4 rows
SNAPSHOTS_BEFORE_KILL = 2
RUN_ID = "night-1"


@dataclass
class LoopingReader:
    """A reader polling the table while the run commits: every head snapshot it sees
    must read back exactly its summary's ``total-records``."""

    catalog: IcebergCatalog
    seen: int = 0  # distinct head snapshots checked

    def __post_init__(self) -> None:
        self._checked: set[int] = set()

    def check(self) -> None:
        try:
            results = self.catalog.results()
        except StorageError:
            return  # not created yet
        head = results.snapshot_id()
        if head is None or head in self._checked:
            return
        assert_reads_whole_snapshot(results, head)
        self._checked.add(head)
        self.seen = len(self._checked)


def assert_reads_whole_snapshot(results: ResultsTable, snapshot_id: int) -> int:
    """pyiceberg and DuckDB both read exactly the snapshot's ``total-records``."""
    info = next(s for s in results.snapshots() if s.snapshot_id == snapshot_id)
    read = results.read(columns=["source_uri"], snapshot_id=snapshot_id).num_rows
    connection = duckdb.connect()
    connection.register("results", results.dataset(snapshot_id=snapshot_id))
    row = connection.execute("SELECT count(*) FROM results").fetchone()
    duck = row[0] if row else None
    assert read == duck == info.total_rows, (read, duck, info)
    return read


def orphan_rows(results: ResultsTable, warehouse: Path) -> tuple[int, int]:
    """Data files under the table's location that no snapshot references, and their rows."""
    referenced = {
        f.file_path.removeprefix("file://") for s in results.table.snapshots()
        for f in results.data_files(snapshot_id=s.snapshot_id)
    }  # fmt: skip
    files = rows = 0
    for path in warehouse.rglob("*.parquet"):
        if str(path) in referenced:
            continue
        files += 1
        try:
            rows += pq.ParquetFile(path).metadata.num_rows
        except (OSError, ValueError):
            continue  # cut short by the kill: no footer
    return files, rows


def test_killed_driver_loses_only_its_uncommitted_interval_then_resumes(
    ray_cluster: Any, local_catalog: IcebergCatalog, tmp_path: Path
) -> None:
    inputs = set(write_images(tmp_path / "archive", N_IMAGES))
    command = score_command(
        str(tmp_path / "archive"), local_catalog, RUN_ID, ray_cluster.address,
        "--commit-every", str(COMMIT_EVERY), "--json", full=False,
    )  # fmt: skip
    env = driver_env(ray_cluster.client_env(), local_catalog)
    reader = LoopingReader(local_catalog)
    killed_log = tmp_path / "killed.log"

    started = time.monotonic()
    proc = start_driver(command, env, killed_log)
    try:

        def two_snapshots_committed() -> bool:
            enough = len(run_snapshots(local_catalog, RUN_ID)) >= SNAPSHOTS_BEFORE_KILL
            reader.check()  # after: once enough, the reader has read a head of this run
            return enough

        wait_until(two_snapshots_committed, proc, killed_log)
    finally:
        kill_group(proc)
    killed_after = time.monotonic() - started
    assert reader.seen >= 1

    # (a) Readers see the last committed snapshot, whole; nothing uncommitted.
    results = local_catalog.results()
    assert results.run_state(RUN_ID) is RunState.IN_PROGRESS
    ours = run_snapshots(local_catalog, RUN_ID)
    committed = sum(s.added_rows for s in ours)
    head = results.snapshot_id()
    assert head == ours[-1].snapshot_id
    assert assert_reads_whole_snapshot(results, head) == committed
    for snapshot in ours:  # every earlier snapshot reads back whole too (time travel)
        assert_reads_whole_snapshot(results, snapshot.snapshot_id)
    committed_uris = results.read(EqualTo("run_id", RUN_ID), ["source_uri"]).column(0).to_pylist()
    assert len(committed_uris) == len(set(committed_uris)) == committed
    assert 0 < committed < N_IMAGES, f"the kill came too late to matter:\n{tail(killed_log)}"
    lost_files, lost_rows = orphan_rows(results, Path(local_catalog.warehouse[len("file://") :]))

    # (b) The same command again resumes: only the remainder is scored.
    resumed_log = tmp_path / "resumed.log"
    resume_started = time.monotonic()
    proc = start_driver(command, env, resumed_log)
    assert finish(proc, resumed_log) == 0, tail(resumed_log)
    resume_s = time.monotonic() - resume_started
    summary = json_summary(resumed_log)
    assert summary["resumed"] is True and summary["replaced"] is False
    assert (summary["listed"], summary["skipped"]) == (N_IMAGES, committed)
    assert summary["ok"] + summary["errors"] == N_IMAGES - committed
    assert_exactly_once(local_catalog, RUN_ID, inputs)
    results = local_catalog.results()
    assert results.run_state(RUN_ID) is RunState.COMPLETE
    assert assert_reads_whole_snapshot(results, results.snapshot_id()) == N_IMAGES  # type: ignore[arg-type]
    print(
        f"\ndriver loss: killed after {killed_after:.1f} s with {len(ours)} snapshots "
        f"({committed}/{N_IMAGES} rows) committed; {lost_files} orphan files "
        f"({lost_rows} rows) lost; reader checked {reader.seen} snapshots; resume scored "
        f"{N_IMAGES - committed} rows in {resume_s:.1f} s, {summary['commits']} commits"
    )
