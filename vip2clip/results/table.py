"""The results table: an Apache Iceberg table that every SQL engine reads consistently.

Writers (Ray tasks) turn result rows into Parquet data files of the table with
:func:`write_data_files`; the driver commits them in snapshots with
:meth:`ResultsTable.commit`. A commit is one catalog operation (optimistic
concurrency, retried on conflict), so readers see whole snapshots only and two
jobs may append to the same table at once. Every data file holds the rows of
exactly one run, so a run can be replaced by whole-file deletes.

Each snapshot's summary carries the run id, model id, commit sequence and row
counts (``vip2clip.*`` properties); the last commit of a run marks it complete.
Re-scoring a complete run with ``--full`` writes the new rows on a branch
(``vip2clip-replace-<run id>``) with the same progressive commits, then
publishes them to ``main`` in one snapshot that swaps the run's files.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import logging
import random
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.fs as pafs
from pyiceberg.exceptions import (
    CommitFailedException,
    NamespaceAlreadyExistsError,
    NoSuchNamespaceError,
    NoSuchTableError,
    TableAlreadyExistsError,
    ValidationException,
)
from pyiceberg.expressions import BooleanExpression
from pyiceberg.io import FileIO
from pyiceberg.io.fsspec import FsspecFileIO
from pyiceberg.io.pyarrow import PyArrowFileIO
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.table.update.snapshot import ManageSnapshots

from vip2clip.errors import ConfigError, StorageError
from vip2clip.results.catalog import CatalogSpec
from vip2clip.results.filters import ALL_ROWS, all_of, equal, run_rows, starts_with
from vip2clip.results.schema import (
    ICEBERG_SCHEMA,
    PARTITION_SPEC,
    SCHEMA_VERSION,
    SORT_ORDER,
    check_run_id,
)
from vip2clip.storage import check_uri, redact_userinfo

logger = logging.getLogger(__name__)

IDENTIFIER_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
PROPERTY_PREFIX = "vip2clip."
RUN_ID = f"{PROPERTY_PREFIX}run-id"
RUN_DATE = f"{PROPERTY_PREFIX}run-date"
MODEL_ID = f"{PROPERTY_PREFIX}model-id"
COMMIT_SEQ = f"{PROPERTY_PREFIX}commit-seq"
RUN_COMPLETE = f"{PROPERTY_PREFIX}run-complete"
REPLACE_BRANCH_PREFIX = "vip2clip-replace-"
MAIN = "main"
COMMIT_ATTEMPTS = 12  # optimistic-concurrency retries before a commit gives up
COMMIT_BACKOFF_S = 0.05  # first back-off; doubles per attempt (with jitter), capped below
COMMIT_BACKOFF_MAX_S = 5.0
# Table properties: identifiers keep full min/max bounds (prefix and run pruning, whole-file
# deletes); bulky columns keep counts only; everything else Iceberg's default truncate(16).
TABLE_PROPERTIES = {
    "format-version": "2",
    "write.parquet.compression-codec": "zstd",
    "write.metadata.metrics.default": "truncate(16)",
    "write.metadata.metrics.column.source_uri": "full",
    "write.metadata.metrics.column.run_id": "full",
    "write.metadata.metrics.column.model_id": "full",
    "write.metadata.metrics.column.mask_png": "counts",
    "write.metadata.metrics.column.error_detail": "counts",
    "write.metadata.metrics.column.object_etag": "counts",
    f"{PROPERTY_PREFIX}schema-version": str(SCHEMA_VERSION),
}


class RunState(enum.StrEnum):
    """Where a run id stands in the table."""

    NEW = "new"  # no row, no snapshot
    IN_PROGRESS = "in-progress"  # committed rows, last commit not final: resume it
    COMPLETE = "complete"  # final commit seen (or rows older than the snapshot history)
    REPLACING = "replacing"  # a --full re-run is writing on its branch: resume it


@dataclass(frozen=True)
class TableRef:
    """A results table: its catalog and ``namespace.table`` identifier (safe to ship)."""

    catalog: CatalogSpec
    identifier: str

    def __post_init__(self) -> None:
        check_identifier(self.identifier)


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot of the table, as ``vip2clip table history`` lists it."""

    snapshot_id: int
    committed_at: dt.datetime
    operation: str
    branch: str
    run_id: str | None
    model_id: str | None
    commit_seq: int | None
    run_complete: bool
    added_rows: int
    total_rows: int | None


def check_identifier(identifier: str) -> str:
    """Return ``identifier`` if it is ``namespace.table`` (letters, digits, ``_``)."""
    check_uri(identifier)  # a URI with credentials where a table belongs: refused, never echoed
    if not IDENTIFIER_PATTERN.fullmatch(identifier):
        raise ConfigError(
            f"table {redact_userinfo(identifier)!r} is not an Iceberg identifier of the form "
            "namespace.table "
            "(letters, digits and '_', starting with a letter)"
        )
    return identifier


def replace_branch(run_id: str) -> str:
    """The branch a ``--full`` re-run of ``run_id`` writes to before it is published."""
    return f"{REPLACE_BRANCH_PREFIX}{check_run_id(run_id)}"


class ResultsTable:
    """Readers and the driver-side commit protocol of one results table."""

    def __init__(self, table: Table, ref: TableRef) -> None:
        self.table = table
        self.ref = ref

    @classmethod
    def open(cls, ref: TableRef, *, create: bool = False) -> ResultsTable:
        """Load the table; with ``create``, create it (and its namespace) when missing.

        Raises:
            StorageError: when the table does not exist (and ``create`` is false).
        """
        catalog = ref.catalog.load()
        namespace = ref.identifier.split(".")[0]
        try:
            return cls(catalog.load_table(ref.identifier), ref)
        except (NoSuchTableError, NoSuchNamespaceError):
            if not create:
                raise StorageError(
                    f"table {ref.identifier} does not exist in catalog {ref.catalog.describe()}; "
                    "'vip2clip score SOURCE TABLE' creates it"
                ) from None
        with contextlib.suppress(NamespaceAlreadyExistsError):
            catalog.create_namespace(namespace)
        try:
            table = catalog.create_table(
                ref.identifier,
                schema=ICEBERG_SCHEMA,
                partition_spec=PARTITION_SPEC,
                sort_order=SORT_ORDER,
                properties=TABLE_PROPERTIES,
            )
        except TableAlreadyExistsError:  # another job created it first
            table = catalog.load_table(ref.identifier)
        logger.info("created results table %s at %s", ref.identifier, table.location())
        return cls(table, ref)

    def refresh(self) -> ResultsTable:
        """Re-read the table's current metadata from the catalog (in place)."""
        self.table.refresh()
        return self

    # ------------------------------------------------------------------ readers
    def snapshot_id(self, ref: str = MAIN) -> int | None:
        """Head snapshot of branch ``ref`` (``None`` for an empty table or a missing branch)."""
        snapshot = self.table.metadata.snapshot_by_name(ref)
        return snapshot.snapshot_id if snapshot else None

    def resolve_as_of(self, as_of: str | None) -> int | None:
        """A snapshot id from ``--as-of`` (a snapshot id or an ISO time), or the current one.

        Raises:
            ConfigError: when no such snapshot exists.
        """
        if as_of is None:
            return self.snapshot_id()
        if as_of.isdigit():
            if self.table.snapshot_by_id(int(as_of)) is None:
                raise ConfigError(f"table {self.ref.identifier} has no snapshot {as_of}")
            return int(as_of)
        try:
            moment = dt.datetime.fromisoformat(as_of)
        except ValueError:
            raise ConfigError(
                f"--as-of {as_of!r} is neither a snapshot id nor an ISO time"
            ) from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)
        snapshot = self.table.snapshot_as_of_timestamp(int(moment.timestamp() * 1000))
        if snapshot is None:
            raise ConfigError(f"table {self.ref.identifier} has no snapshot at or before {as_of}")
        return snapshot.snapshot_id

    def data_files(
        self, row_filter: BooleanExpression = ALL_ROWS, snapshot_id: int | None = None
    ) -> list[DataFile]:
        """Data files of a snapshot (default: main's head) that may hold matching rows."""
        snapshot_id = snapshot_id if snapshot_id is not None else self.snapshot_id()
        if snapshot_id is None:
            return []
        scan = self.table.scan(row_filter=row_filter, snapshot_id=snapshot_id)
        return [task.file for task in scan.plan_files()]

    def dataset(
        self, row_filter: BooleanExpression = ALL_ROWS, snapshot_id: int | None = None
    ) -> pads.Dataset:
        """A pyarrow dataset over exactly the snapshot's data files, with the current schema.

        Engines (DuckDB, polars) push their projections and filters into it, so a
        query reads only the columns and row groups it needs. Rows are whole files of
        the snapshot; ``row_filter`` prunes files by partition and column bounds (apply
        the same predicate in SQL for row-exact results).
        """
        files = self.data_files(row_filter, snapshot_id)
        schema = self.table.schema().as_arrow()
        if not files:
            return pads.dataset(schema.empty_table())
        filesystem, paths = _arrow_paths(self.table.io, [f.file_path for f in files])
        return pads.dataset(paths, schema=schema, format="parquet", filesystem=filesystem)

    def read(
        self,
        row_filter: BooleanExpression = ALL_ROWS,
        columns: Sequence[str] | None = None,
        snapshot_id: int | None = None,
    ) -> pa.Table:
        """Rows matching ``row_filter`` (pyiceberg's row-exact scan) as an Arrow table."""
        return self.batches(row_filter, columns, snapshot_id).read_all()

    def batches(
        self,
        row_filter: BooleanExpression = ALL_ROWS,
        columns: Sequence[str] | None = None,
        snapshot_id: int | None = None,
    ) -> pa.RecordBatchReader:
        """Like :meth:`read`, streamed batch by batch (bounded memory); ``columns`` in the
        order given."""
        snapshot_id = snapshot_id if snapshot_id is not None else self.snapshot_id()
        schema = self.table.schema().as_arrow()
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        if snapshot_id is None:
            return pa.RecordBatchReader.from_batches(schema, [])
        scan = self.table.scan(
            row_filter=row_filter,
            selected_fields=tuple(columns) if columns is not None else ("*",),
            snapshot_id=snapshot_id,
        )
        reader = scan.to_arrow_batch_reader()
        if columns is None:
            return reader
        # pyiceberg yields the projection in schema order.
        ordered = pa.schema([reader.schema.field(c) for c in columns])
        return pa.RecordBatchReader.from_batches(ordered, (b.select(columns) for b in reader))

    def snapshots(self) -> list[SnapshotInfo]:
        """Every retained snapshot, oldest first, with the run it belongs to."""
        branches = {ref.snapshot_id: name for name, ref in self.table.metadata.refs.items()}
        infos = [_snapshot_info(s, branches) for s in self.table.snapshots()]
        return sorted(infos, key=lambda s: (s.committed_at, s.snapshot_id))

    def runs(self) -> list[str]:
        """Run ids seen in retained snapshots on main, in commit order (no duplicates)."""
        main = set(self._ancestry(MAIN))
        seen: dict[str, None] = {}
        for info in self.snapshots():
            if info.run_id and info.snapshot_id in main:
                seen.setdefault(info.run_id, None)
        return list(seen)

    def run_state(self, run_id: str, run_date: str | None = None) -> RunState:
        """Whether ``run_id`` is new, in progress, complete, or being replaced."""
        if replace_branch(run_id) in self.table.metadata.refs:
            return RunState.REPLACING
        main = set(self._ancestry(MAIN))
        ours = [
            s
            for s in self.table.snapshots()
            if s.snapshot_id in main and _prop(s, RUN_ID) == run_id
        ]
        if any(_prop(s, RUN_COMPLETE) == "true" for s in ours):
            return RunState.COMPLETE
        if ours:
            return RunState.IN_PROGRESS
        # Rows whose snapshots were expired by maintenance: an old, finished run.
        rows = run_rows(run_id)
        if run_date is not None:  # partition pruning: one night's manifests, not the history
            rows = all_of(rows, equal("run_date", run_date))
        if self.data_files(rows):
            return RunState.COMPLETE
        return RunState.NEW

    def run_summary(self, run_id: str) -> dict[str, str]:
        """Summary properties of the latest main snapshot of ``run_id`` (empty if none)."""
        main = set(self._ancestry(MAIN))
        ours = [
            s
            for s in self.table.snapshots()
            if s.snapshot_id in main and _prop(s, RUN_ID) == run_id
        ]
        if not ours:
            return {}
        latest = max(ours, key=lambda s: s.timestamp_ms)
        return dict(latest.summary.additional_properties) if latest.summary else {}

    def _ancestry(self, ref: str) -> Iterator[int]:
        snapshot = self.table.metadata.snapshot_by_name(ref)
        while snapshot is not None:
            yield snapshot.snapshot_id
            parent = snapshot.parent_snapshot_id
            snapshot = self.table.snapshot_by_id(parent) if parent is not None else None

    # ------------------------------------------------------------------ writers
    def commit(
        self, files: Sequence[DataFile], properties: dict[str, str], branch: str = MAIN
    ) -> int:
        """Append ``files`` as one snapshot on ``branch``; return the snapshot id.

        Conflicts with concurrent writers are retried on fresh metadata (appends
        never conflict semantically). An empty ``files`` still commits a snapshot,
        which records the run (e.g. a night where everything was already scored).
        """

        def append() -> None:
            with self.table.transaction() as txn:
                update = txn.update_snapshot(snapshot_properties=properties, branch=branch)
                with update.fast_append() as producer:
                    for data_file in files:
                        producer.append_data_file(data_file)

        self.with_retry(append, f"append {len(files)} files")
        snapshot_id = self.snapshot_id(branch)
        assert snapshot_id is not None
        return snapshot_id

    def start_replacement(self, run_id: str, properties: dict[str, str]) -> str:
        """Fork main into the run's replace branch and drop the run's old rows there."""
        branch = replace_branch(run_id)

        def fork() -> None:
            head = self.snapshot_id()
            if head is None:
                raise StorageError(f"table {self.ref.identifier} has no snapshot to replace")
            # One transaction: the branch never exists with the run's old rows on it.
            with self.table.transaction() as txn:
                ManageSnapshots(transaction=txn).create_branch(head, branch).commit()
                self._swap_in(txn, run_id, [], properties, branch, head)

        self.with_retry(fork, f"fork {branch}")
        return branch

    def publish_replacement(self, run_id: str, properties: dict[str, str]) -> int:
        """Swap the run's files on main for those on its branch, in one snapshot."""
        branch = replace_branch(run_id)

        def publish() -> None:
            head = self.snapshot_id(branch)
            if head is None:
                raise StorageError(f"branch {branch} of {self.ref.identifier} is missing")
            new = self.data_files(run_rows(run_id), head)
            with self.table.transaction() as txn:
                self._swap_in(txn, run_id, new, properties, MAIN, self.snapshot_id())
                ManageSnapshots(transaction=txn).remove_branch(branch).commit()

        self.with_retry(publish, f"publish {branch}")
        head = self.snapshot_id()
        assert head is not None
        return head

    def _swap_in(
        self,
        txn: Any,
        run_id: str,
        new: Sequence[DataFile],
        properties: dict[str, str],
        branch: str,
        source_snapshot: int | None,
    ) -> None:
        old = self.data_files(run_rows(run_id), source_snapshot)
        update = txn.update_snapshot(snapshot_properties=properties, branch=branch)
        with update.overwrite() as producer:
            for data_file in old:
                producer.delete_data_file(data_file)
            for data_file in new:
                producer.append_data_file(data_file)

    def with_retry(self, operation: Any, what: str) -> None:
        """Run ``operation`` (one catalog commit); on a conflict, refresh and run it again.

        ``operation`` must plan from ``self.table``'s metadata each time it runs.
        """
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                operation()
                return
            # ValidationException: pyiceberg's own retry of an overwrite found files added
            # since it planned (serializable isolation); nothing landed, so plan again.
            except (CommitFailedException, ValidationException) as exc:
                if attempt + 1 == COMMIT_ATTEMPTS:
                    raise StorageError(
                        f"{what} to {self.ref.identifier}: {COMMIT_ATTEMPTS} commit conflicts "
                        f"in a row ({exc})"
                    ) from None
                delay = min(COMMIT_BACKOFF_S * 2**attempt, COMMIT_BACKOFF_MAX_S)
                time.sleep(delay * (0.5 + random.random()))
                self.refresh()


def scored_filter(model_id: str, prefix: str | None) -> BooleanExpression:
    """Rows of ``model_id`` whose source URI starts with ``prefix`` (any URI without one)."""
    by_model = equal("model_id", model_id)
    return all_of(by_model, starts_with("source_uri", prefix)) if prefix else by_model


# ---------------------------------------------------------------------- worker side

# Keyed by where the catalog points, not only its name: one worker process serves every
# run of its driver, and two runs may use one catalog name for different catalogs.
_WRITERS: dict[tuple[str, tuple[tuple[str, str], ...], str], Table] = {}


def write_data_files(rows: pa.Table, ref: TableRef) -> list[DataFile]:
    """Write result rows as Parquet data files of the table; nothing is committed.

    Runs in Ray tasks. Each file holds the rows of one run (rows of several runs go
    to separate files), so a run can be replaced by whole-file deletes. The table's
    metadata is loaded once per process (schema, partition spec, properties and
    location do not change during a run); rows are sorted by URI so each file's URI
    bounds are tight.
    """
    if rows.num_rows == 0:
        return []
    from pyiceberg.io.pyarrow import _dataframe_to_data_files  # the writer Ray Data uses too

    table = _writer_table(ref)
    files: list[DataFile] = []
    for run_id in pc.unique(rows.column("run_id")).to_pylist():
        ordered = rows.filter(pc.equal(rows.column("run_id"), run_id)).sort_by("source_uri")
        files.extend(
            _dataframe_to_data_files(
                table_metadata=table.metadata, df=ordered, io=table.io, write_uuid=uuid.uuid4()
            )
        )
    return files


def _writer_table(ref: TableRef) -> Table:
    key = (ref.catalog.name, tuple(sorted(ref.catalog.properties.items())), ref.identifier)
    if key not in _WRITERS:
        _WRITERS[key] = ResultsTable.open(ref).table
    return _WRITERS[key]


def _arrow_paths(io: FileIO, locations: list[str]) -> tuple[pafs.FileSystem, list[str]]:
    """A pyarrow filesystem for the table's files (either pyiceberg IO) and their paths."""
    parsed = [urlparse(location) for location in locations]
    scheme, netloc = parsed[0].scheme or "file", parsed[0].netloc
    if isinstance(io, PyArrowFileIO):
        paths = [PyArrowFileIO.parse_location(location)[2] for location in locations]
        return io.fs_by_scheme(scheme, netloc), paths
    if isinstance(io, FsspecFileIO):
        fs = io.get_fs(scheme)
        paths = [f"{p.netloc}{p.path}" if p.netloc else p.path for p in parsed]
        return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), paths
    raise StorageError(f"unsupported Iceberg file IO {type(io).__name__}")


def _prop(snapshot: Snapshot, key: str) -> str | None:
    summary = snapshot.summary
    return summary.get(key) if summary is not None else None


def _snapshot_info(snapshot: Snapshot, branches: dict[int, str]) -> SnapshotInfo:
    summary = snapshot.summary
    extra = summary.additional_properties if summary is not None else {}
    seq = extra.get(COMMIT_SEQ)
    total = extra.get("total-records")
    return SnapshotInfo(
        snapshot_id=snapshot.snapshot_id,
        committed_at=dt.datetime.fromtimestamp(snapshot.timestamp_ms / 1000, tz=dt.UTC),
        operation=str(summary.operation.value) if summary is not None else "",
        branch=branches.get(snapshot.snapshot_id, ""),
        run_id=extra.get(RUN_ID),
        model_id=extra.get(MODEL_ID),
        commit_seq=int(seq) if seq is not None else None,
        run_complete=extra.get(RUN_COMPLETE) == "true",
        added_rows=int(extra.get("added-records", 0)),
        total_rows=int(total) if total is not None else None,
    )
