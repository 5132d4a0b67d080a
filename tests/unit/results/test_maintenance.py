"""Table maintenance on an embedded catalog: orphans, expiry, compaction, concurrency."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pytest

from tests.unit.results.helpers import (
    DAY,
    IDENTIFIER,
    commit_rows,
    open_table,
    result_rows,
    run_properties,
    uris,
)
from vip2clip.errors import StorageError
from vip2clip.results import (
    ResultsTable,
    RunState,
    TableRef,
    maintenance,
    resolve_catalog,
    write_data_files,
)
from vip2clip.results.maintenance import (
    MAINTENANCE,
    MaintenancePolicy,
    compact,
    expire_snapshots,
    remove_orphan_files,
    run_maintenance,
)
from vip2clip.results.table import RUN_ID, replace_branch

NOW = dt.datetime.now(dt.UTC)
ORPHAN_AGE = dt.timedelta(hours=72)
LATER = NOW + dt.timedelta(days=30)  # every snapshot and file is old by then
SMALL = 10  # rows: the compaction threshold of these tests
NEXT_DAY = DAY + dt.timedelta(days=1)


@pytest.fixture
def ref() -> TableRef:
    return TableRef(resolve_catalog(), IDENTIFIER)


@pytest.fixture
def results(ref: TableRef) -> ResultsTable:
    return open_table(ref)


def files_on_disk(results: ResultsTable) -> set[Path]:
    data = Path(urlparse(results.table.location_provider().data_path).path)
    return set(data.rglob("*.parquet"))


def current_files(results: ResultsTable) -> set[Path]:
    return {Path(urlparse(f.file_path).path) for f in results.data_files()}


def all_rows(results: ResultsTable) -> list[dict[str, Any]]:
    table = results.refresh().read()
    return sorted(table.to_pylist(), key=lambda r: (r["run_id"], r["source_uri"]))


def make_old(path: Path, age: dt.timedelta) -> None:
    moment = (NOW - age).timestamp()
    os.utime(path, (moment, moment))


def small_commits(results: ResultsTable, run_id: str, commits: int, rows: int = 3) -> None:
    """``commits`` snapshots of ``rows`` rows each: one small file per commit."""
    for i in range(commits):
        batch = result_rows(uris(f"s3://b/{run_id}", rows, i * rows), run_id=run_id, seed=i)
        commit_rows(results, batch, final=i == commits - 1)


# ---------------------------------------------------------------------- orphans


def test_old_orphans_are_removed_fresh_ones_and_committed_files_kept(
    results: ResultsTable,
) -> None:
    commit_rows(results, result_rows(uris("s3://b/a", 4)), final=True)
    committed = current_files(results)
    before = files_on_disk(results)
    write_data_files(result_rows(uris("s3://b/killed", 3), run_id="killed"), results.ref)
    (old_orphan,) = files_on_disk(results) - before
    write_data_files(result_rows(uris("s3://b/running", 3), run_id="running"), results.ref)
    (fresh_orphan,) = files_on_disk(results) - before - {old_orphan}
    make_old(old_orphan, ORPHAN_AGE + dt.timedelta(hours=1))  # a killed run's, days ago
    for path in committed:
        make_old(path, ORPHAN_AGE * 10)  # old, but referenced

    dry = remove_orphan_files(results, NOW - ORPHAN_AGE, dry_run=True)
    assert (dry.files, dry.bytes) == (1, old_orphan.stat().st_size)
    assert old_orphan.exists()
    removed = remove_orphan_files(results, NOW - ORPHAN_AGE)
    assert removed == dry
    assert files_on_disk(results) == committed | {fresh_orphan}  # a running job's file stays
    assert len(all_rows(results)) == 4


# ---------------------------------------------------------------------- expiry


def test_expiry_keeps_branch_heads_and_every_row(results: ResultsTable) -> None:
    small_commits(results, "night-1", 3)
    small_commits(results, "night-2", 2)
    rows = all_rows(results)
    branch = results.start_replacement("night-1", run_properties("night-1"))
    results.commit(
        write_data_files(result_rows(uris("s3://b/new", 2), run_id="night-1"), results.ref),
        run_properties("night-1"),
        branch,
    )
    heads = {results.snapshot_id(), results.snapshot_id(branch)}

    assert expire_snapshots(results, NOW - dt.timedelta(days=7)) == []  # all recent
    expired = expire_snapshots(results.refresh(), LATER)
    assert len(expired) == 5 + 1 - 1  # 5 main snapshots, the fork; main's head stays
    assert {s.snapshot_id for s in results.refresh().snapshots()} == heads
    assert all_rows(results) == rows  # data intact
    assert results.run_state("night-2") is RunState.COMPLETE  # history gone, rows stay
    assert results.run_state("night-1") is RunState.REPLACING
    branch_files = {
        Path(urlparse(f.file_path).path)
        for f in results.data_files(snapshot_id=results.snapshot_id(replace_branch("night-1")))
    }
    remove_orphan_files(results, LATER)
    assert files_on_disk(results) == current_files(results) | branch_files


# ---------------------------------------------------------------------- compaction


def test_compaction_keeps_every_row_and_reduces_the_file_count(results: ResultsTable) -> None:
    small_commits(results, "night-1", 5)  # 5 files of 3 rows
    night_2 = result_rows(uris("s3://b/n2", 4), run_id="night-2", run_date=NEXT_DAY)
    commit_rows(results, night_2, final=True)  # alone in its partition: nothing to merge
    commit_rows(results, result_rows(uris("s3://b/big", SMALL), run_id="night-3"), final=True)
    rows, files = all_rows(results), len(results.data_files())
    runs, summary = results.runs(), results.run_summary("night-1")

    done = compact(results, SMALL)
    # night-1: 4 files (12 rows >= 10) merged into 1, its 5th file is left alone
    assert (done.replaced.files, done.rows, done.merges, done.written.files) == (4, 12, 1, 1)
    assert len(results.data_files()) == files - 3
    assert all_rows(results) == rows
    head = results.table.current_snapshot()
    assert head is not None and head.summary is not None
    assert head.summary[MAINTENANCE] == "compact" and head.summary.get(RUN_ID) is None
    assert results.runs() == runs and results.run_summary("night-1") == summary
    assert compact(results, SMALL).replaced.files == 0  # nothing left to merge


def test_a_concurrent_commit_during_compaction_loses_no_row(
    results: ResultsTable, ref: TableRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_commits(results, "night-1", 4)
    concurrent = result_rows(uris("s3://b/late", 2, 100), run_id="night-1", seed=9)
    write = maintenance.write_data_files

    def write_then_commit_elsewhere(rows: pa.Table, table_ref: TableRef) -> Any:
        written = write(rows, table_ref)
        commit_rows(open_table(ref), concurrent)  # another job's snapshot lands first
        return written

    monkeypatch.setattr(maintenance, "write_data_files", write_then_commit_elsewhere)
    rows = all_rows(results)
    done = compact(results, SMALL)
    assert done.replaced.files == 4 and done.snapshot_id == results.snapshot_id()
    got = all_rows(results)
    assert len(got) == len(rows) + 2
    assert {r["source_uri"] for r in got} == {r["source_uri"] for r in rows} | set(
        concurrent.column("source_uri").to_pylist()
    )


def test_a_concurrent_replacement_wins_over_compaction(
    results: ResultsTable, ref: TableRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    small_commits(results, "night-1", 4)
    replacement = result_rows(uris("s3://b/night-1", 5), run_id="night-1", seed=7)
    write = maintenance.write_data_files
    merged: list[Path] = []

    def write_while_replaced(rows: pa.Table, table_ref: TableRef) -> Any:
        written = write(rows, table_ref)
        merged.extend(Path(urlparse(f.file_path).path) for f in written)
        other = open_table(ref)  # a --full re-run publishes while we merge
        branch = other.start_replacement("night-1", run_properties("night-1"))
        other.commit(write(replacement, table_ref), run_properties("night-1"), branch)
        other.publish_replacement("night-1", run_properties("night-1", final=True))
        return written

    monkeypatch.setattr(maintenance, "write_data_files", write_while_replaced)
    done = compact(results, SMALL)
    assert (done.replaced.files, done.snapshot_id) == (0, None)  # the merge was dropped
    got = all_rows(results)
    assert [r["source_uri"] for r in got] == replacement.column("source_uri").to_pylist()
    assert merged and not any(path.exists() for path in merged)


# ---------------------------------------------------------------------- all steps


def test_dry_run_changes_nothing_and_predicts_the_real_run(results: ResultsTable) -> None:
    small_commits(results, "night-1", 4)
    write_data_files(result_rows(uris("s3://b/killed", 2), run_id="killed"), results.ref)
    on_disk, snapshots = files_on_disk(results), results.snapshots()
    policy = MaintenancePolicy(compact_below_rows=SMALL, dry_run=True)

    dry = run_maintenance(results, policy, now=LATER)
    assert files_on_disk(results) == on_disk and results.refresh().snapshots() == snapshots
    assert (dry.compaction.replaced.files, dry.expired_snapshots, dry.orphans.files) == (4, 3, 1)
    assert dry.lines()[0].startswith("compact: would merge 4 small files")

    rows = all_rows(results)
    real = run_maintenance(results, MaintenancePolicy(compact_below_rows=SMALL), now=LATER)
    assert real.compaction.replaced == dry.compaction.replaced
    assert real.expired_snapshots == dry.expired_snapshots + 1  # and the pre-compaction head
    assert real.orphans.files == dry.orphans.files + 4  # and the 4 compacted small files
    assert files_on_disk(results) == current_files(results)
    assert len(results.refresh().snapshots()) == 1 and all_rows(results) == rows
    assert real.lines()[2].startswith("orphans: remove 5 files (")


def test_a_referenced_file_missing_from_the_listing_stops_orphan_removal(
    results: ResultsTable,
) -> None:
    commit_rows(results, result_rows(uris("s3://b/a", 2)), final=True)
    commit_rows(results, result_rows(uris("s3://b/b", 2), seed=1), final=True)
    write_data_files(result_rows(uris("s3://b/killed", 2), run_id="killed"), results.ref)
    on_disk = files_on_disk(results)
    next(iter(current_files(results))).unlink()  # the table no longer matches its storage
    with pytest.raises(StorageError, match="not listed under"):
        remove_orphan_files(results, LATER)
    assert len(files_on_disk(results)) == len(on_disk) - 1  # nothing else was deleted
