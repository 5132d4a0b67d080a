"""The results table on real services: a moto S3 warehouse, a PostgreSQL catalog.

Concurrent writers are separate processes with their own catalog connections, like
two scoring drivers; the reader loops beside a committing writer, like a dashboard.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
import uuid
from pathlib import Path

import pytest
from pyiceberg.expressions import EqualTo

from tests.fixtures.iceberg import IcebergCatalog
from tests.fixtures.postgres import PostgresServer
from tests.fixtures.s3 import S3Server
from tests.unit.results.helpers import MAP_SIDE, commit_rows, result_rows, run_properties, uris
from vip2clip.results import (
    ResultsTable,
    RunState,
    TableRef,
    decode_mask,
    resolve_catalog,
    write_data_files,
)
from vip2clip.results import table as results_table

pytestmark = pytest.mark.integration

PG_CATALOG = "pgcat"
WRITER_COMMITS = 20
READER_COMMITS = 15
FILES_PER_COMMIT = 3
PROCESS_TIMEOUT_S = 300
FSSPEC_IO = "pyiceberg.io.fsspec.FsspecFileIO"


# ---------------------------------------------------------------------- S3 warehouse


def test_commit_read_and_replace_on_an_s3_warehouse(
    s3_catalog: IcebergCatalog, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # s3fs: pyarrow's multipart uploads fail against moto's CompleteMultipartUpload.
    monkeypatch.setenv(f"PYICEBERG_CATALOG__{s3_catalog.name.upper()}__PY_IO_IMPL", FSSPEC_IO)
    results = ResultsTable.open(s3_catalog.ref(), create=True)
    bucket, prefix = s3_catalog.warehouse.removeprefix("s3://").split("/", 1)
    commit_rows(results, result_rows(uris("s3://src/a", 6), seed=1), final=True)
    commit_rows(results, result_rows(uris("s3://src/b", 4), run_id="night-2"), final=True)

    fresh = s3_catalog.results()  # another reader, metadata from the catalog
    table = fresh.read()
    assert table.num_rows == 10
    assert decode_mask(table.column("mask_png")[0].as_py()).shape == (MAP_SIDE, MAP_SIDE)
    assert fresh.dataset().count_rows() == 10  # the engines' view, straight from S3
    files = [f.file_path for f in fresh.data_files()]
    assert files and all(f.startswith(f"{s3_catalog.warehouse}/") for f in files)
    listing = s3_server.client().list_objects_v2(Bucket=bucket)
    keys = [obj["Key"] for obj in listing.get("Contents", [])]
    assert all(key.startswith(f"{prefix}/") for key in keys)
    assert any("/metadata/" in key for key in keys)

    branch = fresh.start_replacement("night-1", run_properties("night-1"))
    commit_rows(fresh, result_rows(uris("s3://src/a", 3), seed=9), branch=branch)
    assert s3_catalog.results().read().num_rows == 10  # main untouched until published
    fresh.publish_replacement("night-1", run_properties("night-1", final=True))
    after = s3_catalog.results()
    assert after.read(EqualTo("run_id", "night-1")).num_rows == 3
    assert after.read(EqualTo("run_id", "night-2")).num_rows == 4
    assert after.run_state("night-1") is RunState.COMPLETE


# ---------------------------------------------------------------------- PostgreSQL catalog


@pytest.fixture
def pg_ref(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> TableRef:
    """A new table in a PostgreSQL catalog configured by environment variables (inherited
    by writer processes), with its warehouse in the test's temp folder."""
    warehouse = tmp_path / "warehouse"
    warehouse.mkdir()
    prefix = f"PYICEBERG_CATALOG__{PG_CATALOG.upper()}__"
    monkeypatch.setenv(f"{prefix}TYPE", "sql")
    monkeypatch.setenv(f"{prefix}URI", postgres_server.uri())
    monkeypatch.setenv(f"{prefix}WAREHOUSE", warehouse.as_uri())
    ref = TableRef(resolve_catalog(PG_CATALOG), f"t{uuid.uuid4().hex[:10]}.results")
    ResultsTable.open(ref, create=True)
    return ref


class _ConflictCounter(logging.Handler):
    """Counts pyiceberg's "Commit failed due to a concurrent update, retrying" warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "concurrent update" in record.getMessage()


def append_run(
    identifier: str, run_id: str, commits: int, go: threading.Event, out: mp.Queue[int]
) -> None:
    """One writer process: ``commits`` appends of run ``run_id``, the last one final;
    puts the number of commit conflicts it retried on ``out``."""
    conflicts = _ConflictCounter()
    logging.getLogger("pyiceberg.table").addHandler(conflicts)
    results = ResultsTable.open(TableRef(resolve_catalog(PG_CATALOG), identifier))
    batches = [
        write_data_files(
            result_rows(uris(f"s3://src/{run_id}", 2, start=2 * i), run_id=run_id), results.ref
        )
        for i in range(commits)
    ]
    go.wait(PROCESS_TIMEOUT_S)  # both writers race for the catalog from here on
    for i, files in enumerate(batches):
        results.commit(files, run_properties(run_id, final=i == commits - 1))
    out.put(conflicts.count)


def test_two_writer_processes_on_postgresql_both_land(pg_ref: TableRef) -> None:
    context = mp.get_context("spawn")
    go, out = context.Event(), context.Queue()
    runs = ("night-east", "night-west")
    writers = [
        context.Process(target=append_run, args=(pg_ref.identifier, run, WRITER_COMMITS, go, out))
        for run in runs
    ]
    for writer in writers:
        writer.start()
    go.set()
    conflicts = [out.get(timeout=PROCESS_TIMEOUT_S) for _ in writers]
    for writer in writers:
        writer.join(PROCESS_TIMEOUT_S)
    assert [w.exitcode for w in writers] == [0, 0]
    assert sum(conflicts) > 0  # they really raced: optimistic concurrency retried

    results = ResultsTable.open(pg_ref)
    rows = results.read(columns=["run_id", "source_uri"])
    counts = {run: rows.column("run_id").to_pylist().count(run) for run in runs}
    assert counts == dict.fromkeys(runs, 2 * WRITER_COMMITS)
    assert rows.num_rows == len(set(rows.column("source_uri").to_pylist()))  # no duplicates
    by_id = {s.snapshot_id: s for s in results.snapshots()}
    main = [by_id[i] for i in reversed(list(results._ancestry(results_table.MAIN)))]
    assert len(main) == 2 * WRITER_COMMITS  # every commit is one snapshot on main
    assert [s.total_rows for s in main] == [2 * (i + 1) for i in range(len(main))]
    assert {results.run_state(run) for run in runs} == {RunState.COMPLETE}


def test_a_reader_beside_a_committing_writer_sees_whole_snapshots_only(
    pg_ref: TableRef,
) -> None:
    writer = ResultsTable.open(pg_ref)
    seen: list[tuple[str, int]] = []
    stop = threading.Event()
    errors: list[BaseException] = []

    def read_loop() -> None:
        try:
            reader = ResultsTable.open(pg_ref)  # its own catalog connection
            while not stop.is_set():
                reader.refresh()
                seen.append(("scan", reader.read(columns=["source_uri"]).num_rows))
                seen.append(("dataset", reader.refresh().dataset().count_rows()))
        except BaseException as exc:  # re-raised in the test thread
            errors.append(exc)

    thread = threading.Thread(target=read_loop)
    thread.start()
    try:
        for i in range(READER_COMMITS):
            files = [
                data_file
                for part in range(FILES_PER_COMMIT)
                # Files of different sizes: a half-visible commit would give a foreign total.
                for data_file in write_data_files(
                    result_rows(uris(f"s3://src/c{i}/p{part}", part + 1), run_id="night-r"),
                    pg_ref,
                )
            ]
            writer.commit(files, run_properties("night-r", final=i == READER_COMMITS - 1))
    finally:
        stop.set()
        thread.join(PROCESS_TIMEOUT_S)
    assert not errors, errors
    totals = {s.total_rows for s in ResultsTable.open(pg_ref).snapshots()}
    per_commit = sum(range(1, FILES_PER_COMMIT + 1))
    assert totals == {per_commit * (i + 1) for i in range(READER_COMMITS)}
    counts = {count for _, count in seen}
    assert counts <= totals | {0}, sorted(counts - totals)
    assert len(counts) > 2  # the reader really ran while snapshots were committed
