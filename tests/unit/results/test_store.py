"""ResultsStore on a local folder: commit protocol, replacement, recovery, readers."""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as ds
import pytest

from tests.unit.results.helpers import result_rows, stage, uris
from vip2clip.errors import ConfigError, StorageError
from vip2clip.results import RESULTS_SCHEMA, ResultsStore, conform
from vip2clip.results.store import STALE_STAGING_AGE

DAY = "2026-11-25"
HIVE_GLOB = "run_date=*/run_id=*/*.parquet"


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    return ResultsStore(str(tmp_path / "results"))


def _commit(store: ResultsStore, run_id: str, rows: int, day: str = DAY, files: int = 1):  # type: ignore[no-untyped-def]
    staging = store.prepare(run_id)
    per_file = rows // files
    for i in range(files):
        table = result_rows(uris(f"s3://src/{run_id}", per_file, start=i * per_file), seed=i)
        stage(staging, table, f"part-{i}.parquet")
    return store.commit(run_id, day, {"rows": rows})


def _engine_counts(root: str) -> tuple[int, int, int]:
    """Rows seen by pyarrow (directory), DuckDB and polars (documented glob)."""
    arrow = ds.dataset(root, format="parquet", partitioning="hive").count_rows()
    if not list(Path(root).glob(HIVE_GLOB)):
        return arrow, 0, 0
    glob = f"{root}/{HIVE_GLOB}"
    duck = duckdb.sql(f"select count(*) from read_parquet('{glob}', hive_partitioning=true)")
    polars_rows = pl.scan_parquet(glob, hive_partitioning=True).select(pl.len()).collect().item()
    return arrow, duck.fetchall()[0][0], polars_rows


def test_commit_publishes_exactly_the_staged_rows(store: ResultsStore) -> None:
    info = _commit(store, "night-1", rows=12, files=3)
    assert info.rows == 12 and len(info.files) == 3 and info.replaced_files == 0
    table = store.read()
    assert table.schema.equals(RESULTS_SCHEMA, check_metadata=False)
    assert table.num_rows == 12
    assert set(table.column("run_id").to_pylist()) == {"night-1"}
    assert set(table.column("run_date").to_pylist()) == {dt.date(2026, 11, 25)}
    assert sorted(store.committed_files()) == sorted(info.files)
    partition = Path(store.uri) / f"run_date={DAY}" / "run_id=night-1"
    assert (partition / "_SUCCESS").is_file()
    assert not list((Path(store.uri) / "_staging").glob("**/*.parquet"))
    assert store.manifest("night-1").summary == {"rows": 12}  # type: ignore[union-attr]


def test_staging_is_invisible_to_every_reader(store: ResultsStore) -> None:
    _commit(store, "night-1", rows=4)
    stage(store.prepare("night-2"), result_rows(uris("s3://src/n2", 7)))
    assert store.read().num_rows == 4
    assert _engine_counts(store.uri) == (4, 4, 4)


def test_sql_engines_see_partition_columns(store: ResultsStore) -> None:
    _commit(store, "night-1", rows=5)
    glob = f"{store.uri}/{HIVE_GLOB}"
    row = duckdb.sql(
        f"select typeof(any_value(run_date)), any_value(run_id), count(*) "
        f"from read_parquet('{glob}', hive_partitioning=true) where status = 'ok'"
    ).fetchall()
    assert row == [("DATE", "night-1", 5)]
    frame = pl.scan_parquet(glob, hive_partitioning=True).collect()
    assert frame.schema["run_date"] == pl.Date and frame.height == 5


def test_recommit_replaces_instead_of_duplicating(store: ResultsStore) -> None:
    first = _commit(store, "night-1", rows=6, files=2)
    second = _commit(store, "night-1", rows=4)
    assert second.replaced_files == 2
    assert store.read().num_rows == 4
    assert _engine_counts(store.uri) == (4, 4, 4)
    assert not any(Path(f).exists() for f in first.files)


def test_recommit_under_another_date_moves_the_run(store: ResultsStore) -> None:
    _commit(store, "night-1", rows=3)
    _commit(store, "night-1", rows=2, day="2026-11-26")
    table = store.read()
    assert table.num_rows == 2
    assert set(table.column("run_date").to_pylist()) == {dt.date(2026, 11, 26)}
    assert not (Path(store.uri) / f"run_date={DAY}").exists()


def test_runs_accumulate_and_can_be_read_alone(store: ResultsStore) -> None:
    _commit(store, "night-1", rows=3)
    _commit(store, "night-2", rows=5, day="2026-11-26")
    assert [m.run_id for m in store.runs()] == ["night-1", "night-2"]
    assert store.read().num_rows == 8
    assert store.read("night-2").num_rows == 5
    assert store.read(columns=["source_uri", "run_id"]).column_names == ["source_uri", "run_id"]
    only = store.read(filter=ds.field("run_id") == "night-1")
    assert only.num_rows == 3


def test_prepare_discards_leftovers_of_a_killed_attempt(store: ResultsStore) -> None:
    staging = store.prepare("night-1")
    stage(staging, result_rows(uris("s3://src/killed", 9)), "leftover.parquet")
    staging = store.prepare("night-1")  # the re-run
    stage(staging, result_rows(uris("s3://src/rerun", 3)))
    store.commit("night-1", DAY)
    assert store.read().column("source_uri").to_pylist() == uris("s3://src/rerun", 3)


def test_prepare_removes_only_stale_staging_of_other_runs(store: ResultsStore) -> None:
    old = stage(store.prepare("old-run"), result_rows(uris("s3://src/o", 1)))
    fresh = stage(store.prepare("fresh-run"), result_rows(uris("s3://src/f", 1)))
    long_ago = time.time() - STALE_STAGING_AGE.total_seconds() - 60
    os.utime(old, (long_ago, long_ago))
    store.prepare("another-run")
    assert not Path(old).exists()
    assert Path(fresh).exists()


def test_crash_before_the_commit_point_keeps_the_previous_commit(
    store: ResultsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commit(store, "night-1", rows=3)
    stage(store.prepare("night-1"), result_rows(uris("s3://src/new", 5)))
    real_write = store._write_atomic

    def crash_on_manifest(path: str, data: bytes) -> None:
        if "/_manifests/" in path:
            raise KeyboardInterrupt("driver killed")
        real_write(path, data)

    monkeypatch.setattr(store, "_write_atomic", crash_on_manifest)
    with pytest.raises(KeyboardInterrupt):
        store.commit("night-1", DAY)
    monkeypatch.undo()
    assert store.read().num_rows == 3  # our readers: previous commit, intact
    assert store.recover() == ["night-1"]
    assert _engine_counts(store.uri) == (3, 3, 3)  # orphans rolled back
    info = store.commit("night-1", DAY)  # staging was kept: the commit is retryable
    assert info.rows == 5 and store.read().num_rows == 5


def test_crash_after_the_commit_point_rolls_forward(
    store: ResultsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commit(store, "night-1", rows=3)
    stage(store.prepare("night-1"), result_rows(uris("s3://src/new", 5)))

    def crash(*_: object) -> None:
        raise KeyboardInterrupt("driver killed")

    monkeypatch.setattr(store, "_finish", crash)
    with pytest.raises(KeyboardInterrupt):
        store.commit("night-1", DAY)
    monkeypatch.undo()
    assert store.read().num_rows == 5  # committed
    store.prepare("night-2")  # any next run recovers
    assert _engine_counts(store.uri) == (5, 5, 5)
    assert not (Path(store.uri) / "_commits" / "night-1.json").exists()
    assert (Path(store.uri) / f"run_date={DAY}" / "run_id=night-1" / "_SUCCESS").exists()


def test_abort_drops_staging_and_keeps_commits(store: ResultsStore) -> None:
    _commit(store, "night-1", rows=2)
    stage(store.prepare("night-1"), result_rows(uris("s3://src/x", 4)))
    store.abort("night-1")
    assert store.read().num_rows == 2
    assert not Path(store.staging_uri("night-1")).exists()


def test_empty_run_commits_an_empty_partition(store: ResultsStore) -> None:
    store.prepare("quiet-night")
    info = store.commit("quiet-night", DAY, {"objects": 0})
    assert info.rows == 0 and info.files == ()
    assert [m.run_id for m in store.runs()] == ["quiet-night"]
    assert store.read().num_rows == 0


def test_commit_refuses_files_with_another_schema(store: ResultsStore) -> None:
    table = result_rows(uris("s3://src/x", 2))
    with_partition = table.append_column("run_id", conform(table).column("model_id"))
    stage(store.prepare("night-1"), with_partition)
    with pytest.raises(StorageError, match="FILE_SCHEMA"):
        store.commit("night-1", DAY)
    assert store.runs() == []


@pytest.mark.parametrize("run_id", ["", "a/b", "run=1", "../up", "-x", "a b"])
def test_unsafe_run_ids_are_refused(store: ResultsStore, run_id: str) -> None:
    with pytest.raises(ConfigError):
        store.staging_uri(run_id)


@pytest.mark.parametrize("day", ["2026-13-01", "20261125", "yesterday"])
def test_invalid_run_dates_are_refused(store: ResultsStore, day: str) -> None:
    store.prepare("night-1")
    with pytest.raises(ConfigError):
        store.commit("night-1", day)


def test_scored_identities(store: ResultsStore) -> None:
    src = "s3://src/a"
    staging = store.prepare("night-1")
    stage(staging, result_rows(uris(src, 3)), "ok.parquet")
    stage(
        staging,
        result_rows(uris(src, 2, start=3), status="error", error_reason="not_an_image"),
        "bad.parquet",
    )
    stage(
        staging,
        result_rows(uris(src, 2, start=5), status="error", error_reason="read_failed"),
        "flaky.parquet",
    )
    stage(staging, result_rows(uris(src, 4), model_id="model-b"), "other-model.parquet")
    store.commit("night-1", DAY)
    stage(store.prepare("night-2"), result_rows(uris(src, 2)))  # same objects again
    store.commit("night-2", DAY)

    scored = store.scored_identities("model-a")
    assert scored.column_names == ["source_uri", "object_etag", "object_size", "object_mtime"]
    assert sorted(scored.column("source_uri").to_pylist()) == uris(src, 5)  # no duplicates
    assert store.scored_identities("model-a", retry_reasons=()).num_rows == 7
    assert store.scored_identities("model-b").num_rows == 4
    assert store.scored_identities("model-c").num_rows == 0
    assert store.scored_identities("model-b", exclude_run_id="night-1").num_rows == 0


def test_cleanup_failure_after_the_commit_point_does_not_fail_the_commit(
    store: ResultsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _commit(store, "night-1", rows=3)
    stage(store.prepare("night-1"), result_rows(uris("s3://src/new", 5)))
    real_finish = store._finish

    def flaky_finish(*_: object) -> None:
        raise OSError("S3 unavailable")

    monkeypatch.setattr(store, "_finish", flaky_finish)
    info = store.commit("night-1", DAY)
    assert info.rows == 5 and store.read().num_rows == 5
    monkeypatch.setattr(store, "_finish", real_finish)
    assert store.recover() == ["night-1"]
    assert _engine_counts(store.uri) == (5, 5, 5)
