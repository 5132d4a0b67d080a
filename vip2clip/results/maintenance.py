"""Maintenance of the results table: expire old snapshots, remove orphan files, compact.

``vip2clip table maintain`` runs the three steps in the order Iceberg recommends:

1. **compact** small data files: the current files of one run in one partition that
   hold fewer than ``compact_below_rows`` rows are merged into files of at least that
   many rows, and the merge is committed as one ``overwrite`` snapshot that deletes the
   small files and adds the merged ones (no row changes). A concurrent commit is
   retried on fresh metadata; merges whose small files are no longer current (a
   ``--full`` re-run replaced them meanwhile) are dropped, so no row comes back.
2. **expire** snapshots older than the retention; branch heads (main's current
   snapshot, a running ``--full`` re-run's branch) are always kept. Time travel
   (``vip2clip query --as-of``) reaches back as far as the retention.
3. **remove orphan files**: files under the table's data folder that no retained
   snapshot references and that are older than ``orphan_age``. That is the files of
   expired snapshots, of replaced or compacted runs, and those a killed driver wrote but
   never committed. The age guard keeps the files a running job has written but not
   committed yet: a scoring job runs at most 12 h (the RayJob's deadline).

Every step is a catalog commit or a delete of unreferenced files: readers see whole
snapshots before and after, and ``dry_run`` only reports what would be done.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import pyarrow.fs as pafs
from pyiceberg.conversions import from_bytes
from pyiceberg.io.pyarrow import ArrowScan, PyArrowFileIO
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask
from pyiceberg.types import PrimitiveType

from vip2clip.errors import StorageError
from vip2clip.results.filters import ALL_ROWS
from vip2clip.results.table import PROPERTY_PREFIX, ResultsTable, write_data_files

logger = logging.getLogger(__name__)

DEFAULT_RETAIN_DAYS = 7  # a week of time travel; nightly runs resume within a night
# Far beyond a scoring job's deadline (12 h, deploy/k8s activeDeadlineSeconds): a file that
# old and unreferenced can no longer be committed by anyone.
DEFAULT_ORPHAN_AGE_HOURS = 72
# The scoring writers' rows per file (scoring.config.DEFAULT_ROWS_PER_FILE, ~10-100 MB with
# masks): smaller files are the tails of blocks and commits, worth merging.
DEFAULT_COMPACT_BELOW_ROWS = 1000
MAINTENANCE = f"{PROPERTY_PREFIX}maintenance"  # summary key of compaction snapshots
RUN_COLUMN = "run_id"
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
_KIB = 1024


@dataclass(frozen=True)
class MaintenancePolicy:
    """What :func:`run_maintenance` keeps: snapshot retention, orphan age, the small-file size."""

    retain: dt.timedelta = dt.timedelta(days=DEFAULT_RETAIN_DAYS)
    orphan_age: dt.timedelta = dt.timedelta(hours=DEFAULT_ORPHAN_AGE_HOURS)
    compact_below_rows: int = DEFAULT_COMPACT_BELOW_ROWS
    dry_run: bool = False


@dataclass(frozen=True)
class FileCount:
    """A number of files and their bytes."""

    files: int = 0
    bytes: int = 0


@dataclass(frozen=True)
class Compaction:
    """What compacting did: small files replaced by merged ones, rows carried over."""

    merges: int = 0  # groups of small files, each merged into one file (or a few)
    replaced: FileCount = field(default_factory=FileCount)
    written: FileCount = field(default_factory=FileCount)  # nothing in a dry run
    rows: int = 0
    snapshot_id: int | None = None  # the overwrite snapshot (None: nothing committed)


@dataclass(frozen=True)
class MaintenanceReport:
    """What one :func:`run_maintenance` pass did (or, in a dry run, would do)."""

    dry_run: bool
    compaction: Compaction
    expired_snapshots: int
    orphans: FileCount

    def lines(self) -> list[str]:
        """Human-readable summary, one line per step."""
        would = "would " if self.dry_run else ""
        c = self.compaction
        merged = f"{_files(c.replaced.files, 'small ')} ({_size(c.replaced.bytes)}, {c.rows} rows)"
        into = (
            f"{c.merges} group{'' if c.merges == 1 else 's'}"
            if self.dry_run
            else f"{_files(c.written.files)} ({_size(c.written.bytes)})"
        )
        where = f" in snapshot {c.snapshot_id}" if c.snapshot_id is not None else ""
        return [
            f"compact: {would}merge {merged} into {into}{where}",
            f"expire: {would}expire {self.expired_snapshots} snapshots",
            f"orphans: {would}remove {_files(self.orphans.files)} ({_size(self.orphans.bytes)})",
        ]


def run_maintenance(
    results: ResultsTable, policy: MaintenancePolicy, now: dt.datetime | None = None
) -> MaintenanceReport:
    """Compact, expire and remove orphans, in that order (see the module docstring)."""
    now = now or dt.datetime.now(dt.UTC)
    compaction = compact(results, policy.compact_below_rows, dry_run=policy.dry_run)
    expired = expire_snapshots(results, now - policy.retain, dry_run=policy.dry_run)
    orphans = remove_orphan_files(results, now - policy.orphan_age, dry_run=policy.dry_run)
    return MaintenanceReport(policy.dry_run, compaction, len(expired), orphans)


# ------------------------------------------------------------------------------ expire


def expire_snapshots(
    results: ResultsTable, older_than: dt.datetime, *, dry_run: bool = False
) -> list[int]:
    """Expire the snapshots committed before ``older_than``, except branch heads.

    Returns the expired snapshot ids. Data files are not deleted here: those no
    retained snapshot references become orphans for :func:`remove_orphan_files`.
    """
    expired: list[int] = []

    def expire() -> None:
        expired[:] = _expirable(results, older_than)
        if expired and not dry_run:
            results.table.maintenance.expire_snapshots().by_ids(expired).commit()

    results.with_retry(expire, "expire snapshots")
    return expired


def _expirable(results: ResultsTable, older_than: dt.datetime) -> list[int]:
    metadata = results.table.metadata
    heads = {ref.snapshot_id for ref in metadata.refs.values()}
    cutoff_ms = int(older_than.timestamp() * 1000)
    return [
        s.snapshot_id
        for s in metadata.snapshots
        if s.timestamp_ms < cutoff_ms and s.snapshot_id not in heads
    ]


# ------------------------------------------------------------------------------ orphans


def remove_orphan_files(
    results: ResultsTable, older_than: dt.datetime, *, dry_run: bool = False
) -> FileCount:
    """Delete files under the data folder that no retained snapshot references,
    last modified before ``older_than``; return how many and their bytes.

    Raises:
        StorageError: when a referenced file under the data folder is missing from the
            listing: paths are then not compared like for like, and nothing is deleted.
    """
    referenced = referenced_paths(results)  # before listing: later commits are of fresh files
    data_uri, fs, root = _data_filesystem(results)
    selector = pafs.FileSelector(root, recursive=True, allow_not_found=True)
    files = [info for info in fs.get_file_info(selector) if info.type == pafs.FileType.File]
    missing = {p for p in referenced if p.startswith(f"{root}/")} - {i.path for i in files}
    if missing:
        raise StorageError(
            f"{len(missing)} data files of {results.ref.identifier} are not listed under "
            f"{data_uri} (e.g. {sorted(missing)[0]}); no orphan file was removed"
        )
    orphans = [
        info
        for info in files
        if info.path not in referenced
        and info.mtime is not None  # unknown age: keep it
        and info.mtime < older_than
    ]
    for info in orphans:
        location = data_uri + info.path[len(root) :]
        logger.info("%s orphan file %s", "would remove" if dry_run else "removing", location)
        if not dry_run:
            # Through the table's IO: pyarrow's S3 delete would leave folder markers behind.
            results.table.io.delete(location)
    return FileCount(len(orphans), sum(info.size or 0 for info in orphans))


def referenced_paths(results: ResultsTable) -> set[str]:
    """Paths (as the table's pyarrow filesystem names them) of every data file that any
    retained snapshot, on any branch, references."""
    table = results.table
    manifests = {m.manifest_path: m for s in table.snapshots() for m in s.manifests(table.io)}
    return {
        _fs_path(entry.data_file.file_path)
        for manifest in manifests.values()
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
    }


def _data_filesystem(results: ResultsTable) -> tuple[str, pafs.FileSystem, str]:
    """The table's data folder: its URI, and a pyarrow filesystem configured like the
    table's IO (it lists files with their modification times) with the folder's path."""
    table = results.table
    io = table.io if isinstance(table.io, PyArrowFileIO) else PyArrowFileIO(table.io.properties)
    data_uri = table.location_provider().data_path
    scheme, netloc, path = PyArrowFileIO.parse_location(data_uri)
    return data_uri, io.fs_by_scheme(scheme, netloc), path


def _fs_path(location: str) -> str:
    return PyArrowFileIO.parse_location(location)[2]


# ------------------------------------------------------------------------------ compact


@dataclass(frozen=True)
class _Merge:
    """Small files of one run and partition, and (once written) the file(s) they became."""

    old: tuple[DataFile, ...]
    new: tuple[DataFile, ...] = ()

    @property
    def rows(self) -> int:
        return sum(f.record_count for f in self.old)


def compact(results: ResultsTable, below_rows: int, *, dry_run: bool = False) -> Compaction:
    """Merge each run's current files below ``below_rows`` rows, per partition, into files
    of at least ``below_rows`` rows (or all that is left), committed as one snapshot."""
    planned = plan_compaction(results, below_rows)
    if dry_run or not planned:
        return _outcome(planned, None)
    written = [_write_merge(results, merge) for merge in planned]
    committed: list[_Merge] = []
    snapshot: list[int | None] = [None]

    def replace() -> None:
        current = {f.file_path for f in results.data_files()}
        committed[:] = [m for m in written if all(f.file_path in current for f in m.old)]
        if committed:
            _commit_merges(results, committed)
            snapshot[0] = results.snapshot_id()

    results.with_retry(replace, f"compact {sum(len(m.old) for m in written)} files")
    for merge in written:
        if merge not in committed:  # its small files were replaced meanwhile: drop the merge
            for data_file in merge.new:
                results.table.io.delete(data_file.file_path)
    return _outcome(committed, snapshot[0])


def plan_compaction(results: ResultsTable, below_rows: int) -> list[_Merge]:
    """Groups of current small files to merge: same partition, same run, 2 files or more."""
    run_field = results.table.schema().find_field(RUN_COLUMN)
    groups: dict[tuple[str, str], list[DataFile]] = defaultdict(list)
    for data_file in results.data_files():
        run_id = _single_value(data_file, run_field.field_id, run_field.field_type)
        if data_file.record_count < below_rows and run_id is not None:
            groups[(repr(data_file.partition), run_id)].append(data_file)
    return [
        merge
        for files in groups.values()
        for merge in _bins(sorted(files, key=lambda f: f.file_path), below_rows)
        if len(merge.old) > 1
    ]


def _bins(files: Sequence[DataFile], below_rows: int) -> Iterator[_Merge]:
    """Consecutive files, cut as soon as a bin holds ``below_rows`` rows."""
    current: list[DataFile] = []
    for data_file in files:
        current.append(data_file)
        if sum(f.record_count for f in current) >= below_rows:
            yield _Merge(tuple(current))
            current = []
    if current:
        yield _Merge(tuple(current))


def _single_value(data_file: DataFile, field_id: int, field_type: object) -> str | None:
    """The column's value if the file's bounds say all its rows share it, else None."""
    lower = (data_file.lower_bounds or {}).get(field_id)
    upper = (data_file.upper_bounds or {}).get(field_id)
    if lower is None or lower != upper or not isinstance(field_type, PrimitiveType):
        return None
    return str(from_bytes(field_type, lower))


def _write_merge(results: ResultsTable, merge: _Merge) -> _Merge:
    """Read the small files (by field id, whatever schema they were written with) and
    write their rows as new data files; nothing is committed."""
    table = results.table
    scan = ArrowScan(table.metadata, table.io, table.schema(), ALL_ROWS)
    rows = scan.to_table([FileScanTask(f) for f in merge.old])
    return _Merge(merge.old, tuple(write_data_files(rows, results.ref)))


def _commit_merges(results: ResultsTable, merges: Sequence[_Merge]) -> None:
    properties = {
        MAINTENANCE: "compact",
        f"{PROPERTY_PREFIX}compacted-files": str(sum(len(m.old) for m in merges)),
    }
    with (
        results.table.transaction() as txn,
        txn.update_snapshot(snapshot_properties=properties).overwrite() as producer,
    ):
        for merge in merges:
            for data_file in merge.old:
                producer.delete_data_file(data_file)
            for data_file in merge.new:
                producer.append_data_file(data_file)


def _outcome(merges: Sequence[_Merge], snapshot_id: int | None) -> Compaction:
    old = [f for m in merges for f in m.old]
    new = [f for m in merges for f in m.new]
    return Compaction(
        merges=len(merges),
        replaced=FileCount(len(old), sum(f.file_size_in_bytes for f in old)),
        written=FileCount(len(new), sum(f.file_size_in_bytes for f in new)),
        rows=sum(m.rows for m in merges),
        snapshot_id=snapshot_id,
    )


def _files(count: int, kind: str = "") -> str:
    return f"{count} {kind}file{'' if count == 1 else 's'}"


def _size(count: int) -> str:
    value = float(count)
    for unit in _UNITS[:-1]:
        if value < _KIB:
            return f"{count} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= _KIB
    return f"{value:.1f} {_UNITS[-1]}"
