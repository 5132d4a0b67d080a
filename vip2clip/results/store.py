"""A results table (local folder or ``s3://`` prefix) and its commit protocol.

Layout under the table URI (see ``docs/results-schema.md``, "Commit protocol")::

    run_date=YYYY-MM-DD/run_id=<id>/part-<commit>-<n>.parquet   committed data
    run_date=YYYY-MM-DD/run_id=<id>/_SUCCESS                     written after commit
    _manifests/<run_id>.json     committed files of a run: THE source of truth
    _commits/<run_id>.json       intent of a commit in progress (or crashed)
    _staging/<run_id>/...        writers' output before commit (ignored by readers)

Commit = validate staged files -> write intent -> copy to final names ->
write manifest (single atomic PUT / rename: the commit point) -> ``_SUCCESS``
-> delete replaced files -> delete intent and staging. Any crash leaves the
previous manifest or the new one in force; :meth:`ResultsStore.recover` rolls
an interrupted commit back (before the commit point) or forward (after it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import posixpath
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from vip2clip.data.decode import TRANSIENT_REASONS
from vip2clip.errors import StorageError
from vip2clip.results.manifest import (
    CommitIntent,
    CommittedFile,
    Manifest,
    check_run_date,
    check_run_id,
    partition_dir,
)
from vip2clip.results.schema import (
    FILE_SCHEMA,
    IDENTITY_COLUMNS,
    PARTITION_SCHEMA,
    RESULTS_SCHEMA,
    STATUS_ERROR,
    STATUS_OK,
    same_columns,
)
from vip2clip.storage import StorageConfig, filesystem, is_remote, join, pyarrow_filesystem

STAGING_DIR = "_staging"
MANIFEST_DIR = "_manifests"
INTENT_DIR = "_commits"
SUCCESS_MARKER = "_SUCCESS"
PARQUET_SUFFIX = ".parquet"
# Hive-style readers skip names starting with these; so do we when collecting staged files.
HIDDEN_PREFIXES = ("_", ".")
# Staging of *other* runs older than this is treated as garbage of killed runs.
STALE_STAGING_AGE = dt.timedelta(days=2)
IO_THREADS = 8  # parallel footer reads and server-side copies
READ_BATCH_ROWS = 65_536

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class CommitInfo:
    """What a commit published."""

    run_id: str
    run_date: str
    commit_id: str
    rows: int
    files: tuple[str, ...]  # full URIs of the committed Parquet files
    manifest_uri: str
    replaced_files: int  # files of a previous commit of the same run id, now deleted


class ResultsStore:
    """Commit protocol and readers for one Hive-partitioned results table."""

    def __init__(self, uri: str, storage: StorageConfig | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.storage = storage or StorageConfig()
        self._fs, self._root = filesystem(self.uri, self.storage)

    # ----------------------------------------------------------------- writers
    def staging_uri(self, run_id: str) -> str:
        """Folder where a run's writers put their Parquet files (FILE_SCHEMA columns)."""
        return join(self.uri, STAGING_DIR, check_run_id(run_id))

    def prepare(self, run_id: str) -> str:
        """Start (or restart) a run: recover crashed commits, empty its staging.

        Call once before writing; returns :meth:`staging_uri`. Leftovers of a
        killed attempt of the same run id would otherwise be committed with it.
        Staging folders of other runs older than :data:`STALE_STAGING_AGE` are
        removed as garbage of killed runs.
        """
        self.recover()
        self._remove_tree(self._staging_path(run_id))
        self._remove_stale_staging(exclude=run_id)
        return self.staging_uri(run_id)

    def commit(
        self, run_id: str, run_date: str | dt.date, summary: dict[str, Any] | None = None
    ) -> CommitInfo:
        """Publish exactly the staged files as partition ``run_date=…/run_id=…``.

        Replaces a previous commit of the same run id (also one under another
        run date). ``summary`` (JSON-serialisable, no secrets) is stored in the
        manifest. Safe to call again after a failure: staging is kept until the
        commit is complete.
        """
        run_id, run_date = check_run_id(run_id), check_run_date(run_date)
        self._recover_run(run_id)
        staged = self._staged_files(run_id)
        manifest, intent = self._plan(run_id, run_date, staged, summary or {})
        payload = manifest.to_json()  # serialised before anything is published
        self._write_atomic(self._intent_path(run_id), intent.to_json())
        _parallel(
            lambda pair: self._copy(pair[0].path, self._abs(pair[1])),
            list(zip(staged, intent.publishing, strict=True)),
        )
        self._write_atomic(self._manifest_path(run_id), payload)  # the commit point
        try:
            self._finish(intent, manifest)
        except Exception as exc:  # committed already; the next recover() completes cleanup
            logger.warning("run %s committed; cleanup deferred to recovery (%s)", run_id, exc)
        return CommitInfo(
            run_id=run_id,
            run_date=run_date,
            commit_id=manifest.commit_id,
            rows=manifest.rows,
            files=tuple(self._uri(t) for t in intent.publishing),
            manifest_uri=self._uri(f"{MANIFEST_DIR}/{run_id}.json"),
            replaced_files=sum(1 for p in intent.replacing if p.endswith(PARQUET_SUFFIX)),
        )

    def _plan(
        self, run_id: str, run_date: str, staged: list[_StagedFile], summary: dict[str, Any]
    ) -> tuple[Manifest, CommitIntent]:
        """The manifest to publish and the intent that makes the commit recoverable."""
        commit_id = f"{dt.datetime.now(dt.UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        folder = partition_dir(run_date, run_id)
        files = tuple(
            CommittedFile(f"{folder}/part-{commit_id}-{i:05d}{PARQUET_SUFFIX}", s.rows, s.bytes)
            for i, s in enumerate(staged)
        )
        previous = self.manifest(run_id)
        replacing = tuple(f.path for f in previous.files) if previous else ()
        if previous and previous.run_date != run_date:
            replacing += (f"{partition_dir(previous.run_date, run_id)}/{SUCCESS_MARKER}",)
        manifest = Manifest(
            run_id=run_id,
            run_date=run_date,
            commit_id=commit_id,
            committed_at=dt.datetime.now(dt.UTC).isoformat(),
            files=files,
            rows=sum(f.rows for f in files),
            summary=dict(summary),
        )
        staging = self._staging_path(run_id)
        intent = CommitIntent(run_id, commit_id, tuple(f.path for f in files), replacing, staging)
        return manifest, intent

    def abort(self, run_id: str) -> None:
        """Drop a run's uncommitted output (staging, interrupted commit); commits stay."""
        self._recover_run(check_run_id(run_id))
        self._remove_tree(self._staging_path(run_id))

    def recover(self) -> list[str]:
        """Roll every interrupted commit back or forward; return the run ids touched."""
        intents = self._list(posixpath.join(self._root, INTENT_DIR))
        run_ids = [posixpath.basename(p)[: -len(".json")] for p in intents if p.endswith(".json")]
        for run_id in run_ids:
            self._recover_run(run_id)
        return run_ids

    # ----------------------------------------------------------------- readers
    def manifest(self, run_id: str) -> Manifest | None:
        """The committed manifest of ``run_id``, or ``None`` if it was never committed."""
        raw = self._read_optional(self._manifest_path(check_run_id(run_id)))
        return Manifest.from_json(raw) if raw is not None else None

    def runs(self) -> list[Manifest]:
        """Manifests of every committed run, ordered by run date then run id."""
        paths = [
            p
            for p in self._list(posixpath.join(self._root, MANIFEST_DIR))
            if p.endswith(".json") and not posixpath.basename(p).startswith(HIDDEN_PREFIXES)
        ]
        manifests = _parallel(lambda p: Manifest.from_json(self._fs.cat_file(p)), paths)
        return sorted(manifests, key=lambda m: (m.run_date, m.run_id))

    def committed_files(self, run_id: str | None = None) -> list[str]:
        """Full URIs of the committed Parquet files of one run, or of all runs."""
        return [self._uri(p) for p in self._committed_paths(run_id)]

    def dataset(self, run_id: str | None = None) -> ds.Dataset:
        """A pyarrow dataset of the committed files only, with RESULTS_SCHEMA columns."""
        pa_fs, _ = pyarrow_filesystem(self.uri, self.storage)
        return ds.dataset(
            [self._abs(p) for p in self._committed_paths(run_id)],
            schema=RESULTS_SCHEMA,
            format="parquet",
            filesystem=pa_fs,
            partitioning=ds.partitioning(PARTITION_SCHEMA, flavor="hive"),
            partition_base_dir=self._root,
        )

    def read(
        self,
        run_id: str | None = None,
        columns: Sequence[str] | None = None,
        filter: pc.Expression | None = None,
    ) -> pa.Table:
        """Committed rows (of one run, or all runs) as a RESULTS_SCHEMA table."""
        return self.dataset(run_id).to_table(
            columns=list(columns) if columns is not None else None, filter=filter
        )

    def scored_identities(
        self,
        model_id: str,
        *,
        exclude_run_id: str | None = None,
        retry_reasons: Iterable[str] = TRANSIENT_REASONS,
    ) -> pa.Table:
        """Distinct ``(source_uri, object_etag, object_size)`` already scored by ``model_id``.

        Counts committed ``ok`` rows and ``error`` rows, except errors whose
        reason is in ``retry_reasons`` (transient by default: retried next run).
        ``exclude_run_id`` ignores that run's previous commit (a re-run of a run
        id replaces it, so its rows must not count as already scored). Reads
        only the identity columns, batch by batch.
        """
        excluded = check_run_id(exclude_run_id) if exclude_run_id else None
        paths = [p for m in self.runs() if m.run_id != excluded for p in (f.path for f in m.files)]
        schema = pa.schema([FILE_SCHEMA.field(c) for c in IDENTITY_COLUMNS])
        if not paths:
            return schema.empty_table()
        pa_fs, _ = pyarrow_filesystem(self.uri, self.storage)
        dataset = ds.dataset(
            [self._abs(p) for p in paths], schema=FILE_SCHEMA, format="parquet", filesystem=pa_fs
        )
        retry = pc.field("error_reason").isin(pa.array(sorted(retry_reasons), pa.string()))
        scored = (pc.field("model_id") == model_id) & (
            (pc.field("status") == STATUS_OK) | ((pc.field("status") == STATUS_ERROR) & ~retry)
        )
        batches = dataset.to_batches(
            columns=list(IDENTITY_COLUMNS), filter=scored, batch_size=READ_BATCH_ROWS
        )
        table = pa.Table.from_batches(list(_distinct_batches(batches, schema)), schema=schema)
        return table.group_by(list(IDENTITY_COLUMNS), use_threads=False).aggregate([])

    # ------------------------------------------------------------ commit steps
    def _staged_files(self, run_id: str) -> list[_StagedFile]:
        paths = sorted(
            p
            for p in self._list(self._staging_path(run_id), recursive=True)
            if p.endswith(PARQUET_SUFFIX) and not posixpath.basename(p).startswith(HIDDEN_PREFIXES)
        )
        staged = _parallel(self._inspect, paths)
        return [s for s in staged if s.rows > 0]

    def _inspect(self, path: str) -> _StagedFile:
        with self._fs.open(path, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            schema, rows = parquet.schema_arrow, parquet.metadata.num_rows
        if not same_columns(schema):
            raise StorageError(
                f"staged file {path} does not have the results file schema "
                f"(got columns {schema.names}); write with vip2clip.results.FILE_SCHEMA"
            )
        return _StagedFile(path, rows, int(self._fs.size(path)))

    def _finish(self, intent: CommitIntent, manifest: Manifest) -> None:
        """Roll forward after the commit point: marker, replaced files, intent, staging."""
        marker = {"commit_id": manifest.commit_id, "rows": manifest.rows}
        success = f"{partition_dir(manifest.run_date, manifest.run_id)}/{SUCCESS_MARKER}"
        self._write_atomic(self._abs(success), _json_bytes(marker))
        live = {f.path for f in manifest.files} | {success}
        self._delete([p for p in intent.replacing if p not in live])
        self._remove_tree(intent.staging)
        self._fs.rm_file(self._intent_path(intent.run_id))

    def _recover_run(self, run_id: str) -> None:
        raw = self._read_optional(self._intent_path(run_id))
        if raw is None:
            return
        intent = CommitIntent.from_json(raw)
        manifest = self.manifest(run_id)
        if manifest is not None and manifest.commit_id == intent.commit_id:
            self._finish(intent, manifest)
            return
        live = {f.path for f in manifest.files} if manifest else set()
        self._delete([p for p in intent.publishing if p not in live])
        self._fs.rm_file(self._intent_path(run_id))

    # --------------------------------------------------------------- plumbing
    def _committed_paths(self, run_id: str | None) -> list[str]:
        if run_id is None:
            return [f.path for m in self.runs() for f in m.files]
        manifest = self.manifest(run_id)
        return [f.path for f in manifest.files] if manifest else []

    def _abs(self, relative: str) -> str:
        return posixpath.join(self._root, relative)

    def _uri(self, relative: str) -> str:
        return join(self.uri, relative)

    def _staging_path(self, run_id: str) -> str:
        return posixpath.join(self._root, STAGING_DIR, check_run_id(run_id))

    def _manifest_path(self, run_id: str) -> str:
        return posixpath.join(self._root, MANIFEST_DIR, f"{run_id}.json")

    def _intent_path(self, run_id: str) -> str:
        return posixpath.join(self._root, INTENT_DIR, f"{run_id}.json")

    def _list(self, path: str, recursive: bool = False) -> list[str]:
        # fsspec caches listings per process (and Ray reuses worker processes): another
        # process's commit must be seen, so every listing asks the store afresh.
        self._fs.invalidate_cache(path)
        try:
            if recursive:
                return [str(p) for p in self._fs.find(path)]
            return [str(p) for p in self._fs.ls(path, detail=False)]
        except FileNotFoundError:
            return []

    def _read_optional(self, path: str) -> bytes | None:
        try:
            data: bytes = self._fs.cat_file(path)
        except FileNotFoundError:
            return None
        return data

    def _copy(self, source: str, target: str) -> None:
        if not is_remote(self.uri):
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self._fs.cp_file(source, target)

    def _write_atomic(self, path: str, data: bytes) -> None:
        """One PUT on S3 (atomic there); write-then-rename on local disks."""
        if is_remote(self.uri):
            self._fs.pipe_file(path, data)
            return
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        partial.write_bytes(data)
        partial.replace(target)

    def _delete(self, relative_paths: Sequence[str]) -> None:
        paths = [self._abs(p) for p in relative_paths]
        _parallel(self._delete_one, paths)
        if not is_remote(self.uri):
            for folder in {Path(p).parent for p in paths}:
                _remove_empty_dirs(folder, stop=Path(self._root))

    def _delete_one(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(path)

    def _remove_tree(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm(path, recursive=True)

    def _remove_stale_staging(self, exclude: str) -> None:
        cutoff = dt.datetime.now(dt.UTC) - STALE_STAGING_AGE
        for folder in self._list(posixpath.join(self._root, STAGING_DIR)):
            if posixpath.basename(folder) == exclude:
                continue
            newest = self._newest_mtime(folder)
            if newest is not None and newest < cutoff:
                self._remove_tree(folder)

    def _newest_mtime(self, folder: str) -> dt.datetime | None:
        self._fs.invalidate_cache(folder)
        try:
            details = self._fs.find(folder, detail=True)
        except FileNotFoundError:
            return None
        times = [_modified(info) for info in details.values()]
        return max((t for t in times if t is not None), default=None)


@dataclass(frozen=True)
class _StagedFile:
    path: str
    rows: int
    bytes: int


def _distinct_batches(
    batches: Iterator[pa.RecordBatch], schema: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """Deduplicate batch by batch so memory follows distinct identities, not rows."""
    for batch in batches:
        if batch.num_rows:
            distinct = pa.Table.from_batches([batch]).group_by(list(schema.names)).aggregate([])
            yield from distinct.select(schema.names).cast(schema).to_batches()


def _parallel(function: Callable[[T], R], items: Sequence[T]) -> list[R]:
    if len(items) <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(IO_THREADS, len(items))) as pool:
        return list(pool.map(function, items))


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True).encode()


def _modified(info: dict[str, Any]) -> dt.datetime | None:
    value = info.get("LastModified") or info.get("mtime") or info.get("created")
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    return None


def _remove_empty_dirs(folder: Path, stop: Path) -> None:
    """Remove ``folder`` and its parents up to ``stop`` while they are empty (local only)."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
