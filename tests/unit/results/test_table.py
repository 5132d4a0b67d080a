"""The results table on an embedded SQLite catalog and a local warehouse (tmp dirs)."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.expressions import EqualTo
from pyiceberg.types import StringType

from tests.unit.results.helpers import (
    DAY,
    IDENTIFIER,
    commit_rows,
    open_table,
    result_rows,
    run_properties,
    uris,
)
from vip2clip.errors import ConfigError, StorageError
from vip2clip.results import (
    ICEBERG_SCHEMA,
    ResultsTable,
    RunState,
    TableRef,
    resolve_catalog,
    write_data_files,
)
from vip2clip.results import table as results_table
from vip2clip.results.schema import PARTITION_SPEC, SORT_ORDER
from vip2clip.results.table import TABLE_PROPERTIES, replace_branch, scored_filter

NEXT_DAY = DAY + dt.timedelta(days=1)


@pytest.fixture
def ref() -> TableRef:
    return TableRef(resolve_catalog(), IDENTIFIER)


@pytest.fixture
def results(ref: TableRef) -> ResultsTable:
    return open_table(ref)


def _run_ids(table: pa.Table) -> dict[str, int]:
    ids = table.column("run_id").to_pylist()
    return {run: ids.count(run) for run in sorted(set(ids))}


# ---------------------------------------------------------------------- creation


def test_created_on_first_use_with_the_documented_layout(ref: TableRef) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        ResultsTable.open(ref)
    table = ResultsTable.open(ref, create=True).table
    assert table.schema() == ICEBERG_SCHEMA
    assert [(f.name, f.field_id) for f in ICEBERG_SCHEMA.fields] == [
        (f.name, f.field_id) for f in table.schema().fields
    ]
    assert table.spec().fields == PARTITION_SPEC.fields
    assert table.sort_order().fields == SORT_ORDER.fields
    assert TABLE_PROPERTIES.items() <= table.properties.items()
    assert table.format_version == 2
    again = ResultsTable.open(ref, create=True).table  # a second job: loads, not recreates
    assert again.metadata.table_uuid == table.metadata.table_uuid


def test_identifier_must_be_namespace_dot_table() -> None:
    for bad in ("results", "a.b.c", "1a.b", "a.b-c", "a b.c"):
        with pytest.raises(ConfigError, match=r"namespace\.table"):
            TableRef(resolve_catalog(), bad)


# ---------------------------------------------------------------------- commits and reads


def test_commit_then_read_back(results: ResultsTable) -> None:
    assert results.snapshot_id() is None and results.read().num_rows == 0
    first = result_rows(uris("s3://src/a", 5))
    snapshot = commit_rows(results, first)
    assert results.snapshot_id() == snapshot
    table = results.read()
    assert table.num_rows == 5
    assert table.schema.equals(ICEBERG_SCHEMA.as_arrow())
    assert sorted(table.column("source_uri").to_pylist()) == uris("s3://src/a", 5)
    assert table.column("run_date").to_pylist() == [DAY] * 5
    assert table.column("mask_png").to_pylist() == first.column("mask_png").to_pylist()
    assert results.read(columns=["source_uri", "run_id"]).column_names == ["source_uri", "run_id"]
    assert results.dataset().to_table().num_rows == 5  # the view DuckDB and polars get
    (info,) = results.snapshots()
    assert (info.snapshot_id, info.run_id, info.model_id) == (snapshot, "night-1", "model-a")
    assert (info.operation, info.branch, info.added_rows, info.total_rows) == (
        "append",
        "main",
        5,
        5,
    )


def test_each_commit_is_one_snapshot_and_readers_see_whole_ones(results: ResultsTable) -> None:
    a = commit_rows(results, result_rows(uris("s3://src/a", 3)))
    b = commit_rows(results, result_rows(uris("s3://src/b", 4), run_id="night-2"))
    assert [s.snapshot_id for s in results.snapshots()] == [a, b]
    assert results.read(snapshot_id=a).num_rows == 3
    assert _run_ids(results.read(snapshot_id=b)) == {"night-1": 3, "night-2": 4}
    assert results.read(EqualTo("run_id", "night-2")).num_rows == 4
    assert results.dataset(snapshot_id=a).count_rows() == 3


def test_an_empty_commit_still_records_the_run(results: ResultsTable) -> None:
    snapshot = results.commit([], run_properties("night-1", final=True))
    assert results.snapshot_id() == snapshot and results.read().num_rows == 0
    assert results.run_state("night-1") is RunState.COMPLETE
    assert results.runs() == ["night-1"]


def test_write_data_files_gives_each_run_its_own_sorted_files(
    results: ResultsTable, ref: TableRef
) -> None:
    mixed = pa.concat_tables(
        [
            result_rows(uris("s3://src/z", 3), run_id="night-1"),
            result_rows(uris("s3://src/a", 4), run_id="night-2"),
            result_rows(uris("s3://src/m", 2), run_id="night-1"),
        ]
    )
    files = write_data_files(mixed, ref)
    assert write_data_files(mixed.slice(0, 0), ref) == []
    by_run: dict[str, int] = {}
    for data_file in files:
        rows = pq.read_table(data_file.file_path.removeprefix("file://"))
        (run,) = set(rows.column("run_id").to_pylist())  # one run per file
        assert rows.column("source_uri").to_pylist() == sorted(
            rows.column("source_uri").to_pylist()
        )
        by_run[run] = by_run.get(run, 0) + data_file.record_count
    assert by_run == {"night-1": 5, "night-2": 4}
    results.commit(files, run_properties("mixed"))
    assert _run_ids(results.read()) == {"night-1": 5, "night-2": 4}


# ---------------------------------------------------------------------- run states


def test_run_state_new_in_progress_complete(results: ResultsTable) -> None:
    assert results.run_state("night-1") is RunState.NEW
    commit_rows(results, result_rows(uris("s3://src/a", 2)))
    assert results.run_state("night-1") is RunState.IN_PROGRESS
    commit_rows(results, result_rows(uris("s3://src/a", 2, start=2)))
    assert results.run_state("night-1") is RunState.IN_PROGRESS
    commit_rows(results, result_rows(uris("s3://src/a", 1, start=4)), final=True)
    assert results.run_state("night-1") is RunState.COMPLETE
    assert results.run_summary("night-1")[results_table.RUN_COMPLETE] == "true"
    assert results.run_state("night-2") is RunState.NEW
    assert results.run_summary("night-2") == {}


def test_run_is_complete_when_its_snapshots_were_expired(results: ResultsTable) -> None:
    commit_rows(results, result_rows(uris("s3://src/a", 2)))
    commit_rows(results, result_rows(uris("s3://src/a", 2, start=2)), final=True)
    commit_rows(results, result_rows(uris("s3://src/b", 3), run_id="night-2"), final=True)
    old = [s.snapshot_id for s in results.snapshots() if s.run_id == "night-1"]
    results.table.maintenance.expire_snapshots().by_ids(old).commit()
    assert not any(s.run_id == "night-1" for s in results.snapshots())
    assert results.read(EqualTo("run_id", "night-1")).num_rows == 4  # rows stay
    assert results.run_state("night-1") is RunState.COMPLETE
    assert results.runs() == ["night-2"]


# ---------------------------------------------------------------------- --full replacement


def test_replacement_swaps_one_runs_rows_in_one_main_snapshot(results: ResultsTable) -> None:
    commit_rows(results, result_rows(uris("s3://src/a", 4), seed=1), final=True)
    commit_rows(results, result_rows(uris("s3://src/b", 3), run_id="night-2"), final=True)
    other_before = results.read(EqualTo("run_id", "night-2")).sort_by("source_uri")
    main_before = results.snapshot_id()

    branch = results.start_replacement("night-1", run_properties("night-1"))
    assert branch == replace_branch("night-1") == "vip2clip-replace-night-1"
    assert results.run_state("night-1") is RunState.REPLACING
    assert results.snapshot_id() == main_before  # main untouched while the re-run writes
    assert _run_ids(results.read(snapshot_id=results.snapshot_id(branch))) == {"night-2": 3}

    for start in (0, 2):
        rows = result_rows(uris("s3://src/a", 2, start=start), seed=7)
        commit_rows(results, rows, branch=branch)
    assert results.snapshot_id() == main_before
    assert _run_ids(results.read()) == {"night-1": 4, "night-2": 3}
    # Meanwhile another job appends to main (its own table object, stale for us).
    other_job = ResultsTable.open(results.ref)
    main_before = commit_rows(other_job, result_rows(uris("s3://src/c", 2), run_id="night-3"))

    published = results.publish_replacement("night-1", run_properties("night-1", final=True))
    main = list(results._ancestry(results_table.MAIN))
    assert main[:2] == [published, main_before]  # one snapshot on main swaps the run
    assert branch not in results.table.metadata.refs
    assert results.run_state("night-1") is RunState.COMPLETE
    after = results.read()
    assert _run_ids(after) == {"night-1": 4, "night-2": 3, "night-3": 2}
    new_rows = results.read(EqualTo("run_id", "night-1")).sort_by("source_uri")
    assert new_rows.column("image_score").to_pylist() != (
        result_rows(uris("s3://src/a", 4), seed=1).column("image_score").to_pylist()
    )
    assert results.read(EqualTo("run_id", "night-2")).sort_by("source_uri").equals(other_before)
    (swap,) = [s for s in results.snapshots() if s.snapshot_id == published]
    assert (swap.operation, swap.run_complete, swap.total_rows) == ("overwrite", True, 9)


def test_replacing_an_empty_table_is_a_storage_error(results: ResultsTable) -> None:
    with pytest.raises(StorageError, match="no snapshot"):
        results.start_replacement("night-1", run_properties("night-1"))


# ---------------------------------------------------------------------- time travel


def test_resolve_as_of_by_id_and_iso_time(results: ResultsTable) -> None:
    assert results.resolve_as_of(None) is None
    first = commit_rows(results, result_rows(uris("s3://src/a", 1)))
    time.sleep(0.02)
    second = commit_rows(results, result_rows(uris("s3://src/a", 1, start=1)))
    infos = {s.snapshot_id: s for s in results.snapshots()}
    assert results.resolve_as_of(None) == second
    assert results.resolve_as_of(str(first)) == first
    at_first = infos[first].committed_at
    assert results.resolve_as_of(at_first.isoformat()) == first
    between = at_first + (infos[second].committed_at - at_first) / 2
    assert results.resolve_as_of(between.replace(tzinfo=None).isoformat()) == first  # naive=UTC
    assert results.resolve_as_of(infos[second].committed_at.isoformat()) == second
    with pytest.raises(ConfigError, match="no snapshot 12345"):
        results.resolve_as_of("12345")
    with pytest.raises(ConfigError, match="at or before"):
        results.resolve_as_of("2001-01-01T00:00:00")
    with pytest.raises(ConfigError, match="neither"):
        results.resolve_as_of("yesterday")


# ---------------------------------------------------------------------- skip-check pruning


def test_scored_filter_plans_only_that_models_files_under_the_prefix(
    results: ResultsTable,
) -> None:
    # Three nights x two models x two prefixes, one file each (12 files).
    for night in range(3):
        for model in ("model-a", "model-b"):
            for prefix in ("s3://src/cam1", "s3://src/cam2"):
                rows = result_rows(
                    uris(prefix, 4, start=night * 4),
                    run_id=f"{model}-{night}",
                    run_date=DAY + dt.timedelta(days=night),
                    model_id=model,
                )
                commit_rows(results, rows, final=True)
    assert len(results.data_files()) == 12
    planned = results.data_files(scored_filter("model-a", "s3://src/cam1/"))
    assert len(planned) == 3
    assert all("model_id=model-a" in f.file_path for f in planned)
    rows = results.read(scored_filter("model-a", "s3://src/cam1/"))
    assert rows.num_rows == 12
    assert {u.rsplit("/", 1)[0] for u in rows.column("source_uri").to_pylist()} == {"s3://src/cam1"}
    assert len(results.data_files(scored_filter("model-a", None))) == 6  # a manifest source
    assert results.data_files(scored_filter("model-c", "s3://src/cam1/")) == []
    assert results.data_files(scored_filter("model-a", "s3://src/cam3/")) == []


# ---------------------------------------------------------------------- schema evolution


def test_adding_a_column_keeps_old_snapshots_and_rows_readable(
    results: ResultsTable, ref: TableRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = commit_rows(results, result_rows(uris("s3://src/a", 3)), final=True)
    with results.table.update_schema() as update:
        update.add_column("review_note", StringType(), doc="an inspector's note")
    results.refresh()
    # Writers load the table once per process; a run after the change sees the new schema.
    monkeypatch.setattr(results_table, "_WRITERS", {})

    unaware = result_rows(uris("s3://src/b", 2), run_id="night-2")  # an older writer
    commit_rows(results, unaware, final=True)
    aware = result_rows(uris("s3://src/c", 2), run_id="night-3")
    aware = aware.append_column("review_note", pa.array(["ok?", None], pa.string()))
    commit_rows(results, aware, final=True)

    before = results.read(snapshot_id=old)
    assert before.num_rows == 3 and "review_note" not in before.column_names
    now = results.read().sort_by("source_uri")
    assert now.column_names == [*ICEBERG_SCHEMA.as_arrow().names, "review_note"]
    notes = dict(
        zip(
            now.column("source_uri").to_pylist(), now.column("review_note").to_pylist(), strict=True
        )
    )
    assert [notes[u] for u in uris("s3://src/a", 3)] == [None] * 3
    assert [notes[u] for u in uris("s3://src/b", 2)] == [None] * 2
    assert [notes[u] for u in uris("s3://src/c", 2)] == ["ok?", None]
    assert results.dataset().to_table().column("review_note").null_count == 6


# ---------------------------------------------------------------------- concurrency


def test_a_stale_writer_rebases_its_commit_on_fresh_metadata(ref: TableRef) -> None:
    first, second = open_table(ref), ResultsTable.open(ref)  # both see the empty table
    a = commit_rows(first, result_rows(uris("s3://src/a", 2), run_id="night-a"))
    b = commit_rows(second, result_rows(uris("s3://src/b", 3), run_id="night-b"))  # conflicts
    assert second.table.snapshot_by_id(b).parent_snapshot_id == a  # appended after, not over
    assert _run_ids(ResultsTable.open(ref).read()) == {"night-a": 2, "night-b": 3}


def test_conflicts_left_by_pyiceberg_are_retried_by_the_table(
    ref: TableRef, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = open_table(ref)
    with first.table.transaction() as txn:  # pyiceberg's own commit retries off
        txn.set_properties({"commit.retry.num-retries": "0"})
    second = ResultsTable.open(ref)
    commit_rows(first, result_rows(uris("s3://src/a", 2), run_id="night-a"))
    refreshes: list[int] = []
    real_refresh = ResultsTable.refresh

    def counted(self: ResultsTable) -> ResultsTable:
        refreshes.append(1)
        return real_refresh(self)

    monkeypatch.setattr(ResultsTable, "refresh", counted)
    monkeypatch.setattr(results_table, "COMMIT_BACKOFF_S", 0.001)
    commit_rows(second, result_rows(uris("s3://src/b", 3), run_id="night-b"))
    assert refreshes == [1]
    assert _run_ids(ResultsTable.open(ref).read()) == {"night-a": 2, "night-b": 3}


def test_concurrent_appends_from_two_threads_all_land(ref: TableRef) -> None:
    open_table(ref)
    commits_each = 10
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(run_id: str) -> None:
        try:
            own = ResultsTable.open(ref)  # its own catalog connection and metadata
            files = [
                write_data_files(
                    result_rows(uris(f"s3://src/{run_id}", 2, start=2 * i), run_id=run_id), ref
                )
                for i in range(commits_each)
            ]
            barrier.wait()  # then commit only, so the two writers race for the catalog
            for i, batch in enumerate(files):
                own.commit(batch, run_properties(run_id, final=i == commits_each - 1))
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(run,)) for run in ("night-a", "night-b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    fresh = ResultsTable.open(ref)
    assert _run_ids(fresh.read()) == {"night-a": 2 * commits_each, "night-b": 2 * commits_each}
    assert len(fresh.snapshots()) == 2 * commits_each
    assert {fresh.run_state(r) for r in ("night-a", "night-b")} == {RunState.COMPLETE}
