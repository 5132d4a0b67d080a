"""Source listing: which objects a scoring run reads, with their identity.

A source is an ``s3://bucket/prefix``, a local folder, or a manifest file (text,
CSV or Parquet) naming one URI per row. Listings are produced page by page
(:func:`iter_listing_pages`) and handed to Ray Data as blocks by a read task
(:class:`ListingDatasource`), so neither the driver nor any worker ever holds a
whole listing of a huge prefix. Each listed object carries its identity as seen
at listing time (size plus ETag for object stores, size plus mtime for local
files); incremental runs compare it with what was already scored.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa

from vip2clip import storage
from vip2clip.errors import StorageError
from vip2clip.storage import StorageConfig

# S3 ListObjectsV2 returns at most 1000 keys per request; one page becomes one block.
DEFAULT_PAGE_SIZE = 1000
MANIFEST_SUFFIXES = {".txt": "text", ".lst": "text", ".csv": "csv", ".parquet": "parquet"}
# Column names a manifest may use for the object URI, in order of preference.
MANIFEST_URI_COLUMNS = ("source_uri", "uri", "path", "key")

LISTING_SCHEMA = pa.schema(
    [
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("object_size", pa.int64()),
        pa.field("object_etag", pa.string()),
        pa.field("object_mtime", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True)
class ListedObject:
    """One object found at listing time and its identity."""

    uri: str
    size: int | None
    etag: str | None
    mtime: datetime | None


def has_extension(uri: str, extensions: Iterable[str]) -> bool:
    """Whether ``uri`` ends with one of ``extensions`` (case-insensitive, dot optional).

    >>> has_extension("s3://b/x/IMG_1.JPG", [".jpg", "png"])
    True
    >>> has_extension("s3://b/x/notes.txt", [".jpg"])
    False
    """
    suffix = PurePosixPath(uri).suffix.lower()
    return any(suffix == _dotted(ext) for ext in extensions)


def is_manifest(uri: str, storage_config: StorageConfig | None = None) -> bool:
    """Whether ``uri`` names a manifest file (by suffix) rather than a folder or prefix."""
    if PurePosixPath(uri).suffix.lower() not in MANIFEST_SUFFIXES:
        return False
    fs, path = storage.filesystem(uri, storage_config)
    try:
        return bool(fs.isfile(path))
    except OSError as exc:
        raise StorageError(f"cannot inspect source {uri}: {exc}") from None


def iter_listing_pages(
    source: str,
    extensions: Iterable[str],
    storage_config: StorageConfig | None = None,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Iterator[list[ListedObject]]:
    """Yield the objects under ``source`` with a wanted extension, ``page_size`` at a time."""
    wanted = tuple(extensions)
    objects: Iterator[ListedObject]
    if storage.is_remote(source):
        objects = _iter_s3(source, storage_config or StorageConfig(), page_size)
    else:
        objects = _iter_local(Path(storage.filesystem(source)[1]))
    page: list[ListedObject] = []
    for obj in objects:
        if not has_extension(obj.uri, wanted):
            continue
        page.append(obj)
        if len(page) >= page_size:
            yield page
            page = []
    if page:
        yield page


def listing_prefix(source: str, storage_config: StorageConfig | None = None) -> str | None:
    """The prefix every URI listed from ``source`` starts with (``None`` for a manifest).

    The incremental skip check filters on it, so other sources' rows are pruned.
    """
    if is_manifest(source, storage_config):
        return None
    if storage.is_remote(source):
        scheme, rest = source.split("://", 1)
        bucket, _, prefix = rest.partition("/")
        prefix = prefix.strip("/")
        return f"{scheme}://{bucket}/{prefix}/" if prefix else f"{scheme}://{bucket}/"
    path = storage.filesystem(source)[1]
    return f"{path.rstrip('/')}/" if Path(path).is_dir() else path


def page_to_table(page: Iterable[ListedObject]) -> pa.Table:
    """A listing page as a block of :data:`LISTING_SCHEMA`."""
    rows = list(page)
    return pa.table(
        {
            "source_uri": [o.uri for o in rows],
            "object_size": [o.size for o in rows],
            "object_etag": [o.etag for o in rows],
            "object_mtime": [o.mtime for o in rows],
        },
        schema=LISTING_SCHEMA,
    )


def check_source(source: str, storage_config: StorageConfig | None = None) -> None:
    """Fail early, with a clear message, when ``source`` does not exist.

    A source or S3 endpoint that carries credentials is refused first, so no message
    (here or from boto) can echo them.
    """
    storage.check_uri(source)
    if storage.is_remote(source):
        storage.s3_endpoint(storage_config or StorageConfig())
        bucket = source.split("://", 1)[1].split("/", 1)[0]
        if not bucket:
            raise StorageError(f"source {source!r} names no bucket; use s3://bucket/prefix")
        client = s3_client(storage_config or StorageConfig())
        try:
            client.head_bucket(Bucket=bucket)
        except Exception as exc:
            reason = storage.redact_userinfo(str(exc))
            raise StorageError(f"source bucket {bucket!r} is not reachable: {reason}") from None
        return
    path = Path(storage.filesystem(source)[1])
    if not path.exists():
        raise StorageError(
            f"source {source} does not exist; give a folder, an s3:// prefix or a manifest"
        )


def s3_client(storage_config: StorageConfig) -> Any:
    """A boto3 S3 client honouring :class:`StorageConfig` and the standard AWS chain.

    boto3 itself reads ``AWS_ENDPOINT_URL(_S3)`` and the credential chain; only
    explicit config values are passed here.
    """
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    session = boto3.session.Session(profile_name=storage_config.profile)
    config = Config(
        retries={"max_attempts": storage_config.max_attempts, "mode": "standard"},
        signature_version=UNSIGNED if storage_config.anonymous else None,
    )
    return session.client(
        "s3",
        endpoint_url=storage_config.endpoint_url,
        region_name=storage_config.region,
        config=config,
    )


def _iter_s3(source: str, storage_config: StorageConfig, page_size: int) -> Iterator[ListedObject]:
    scheme, rest = source.split("://", 1)
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    paginator = s3_client(storage_config).get_paginator("list_objects_v2")
    pages = paginator.paginate(
        Bucket=bucket,
        Prefix=f"{prefix}/" if prefix else "",
        PaginationConfig={"PageSize": min(page_size, DEFAULT_PAGE_SIZE)},
    )
    try:
        for response in pages:
            for item in response.get("Contents", []):
                key = item["Key"]
                if key.endswith("/"):
                    continue  # folder marker objects
                yield ListedObject(
                    uri=f"{scheme}://{bucket}/{key}",
                    size=int(item["Size"]),
                    etag=_clean_etag(item.get("ETag")),
                    mtime=item.get("LastModified"),
                )
    except Exception as exc:
        raise StorageError(f"listing {source} failed: {exc}") from None


def _iter_local(root: Path) -> Iterator[ListedObject]:
    """Depth-first walk in name order; directory symlinks are not followed (no cycles)."""
    if root.is_file():
        yield _local_object(root)
        return
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise StorageError(f"cannot list {folder}: {exc}") from None
        subfolders = []
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                subfolders.append(Path(entry.path))
            else:  # files, and special files the read stage reports as not_a_file
                yield _listed_local(Path(entry.path))
        stack.extend(reversed(subfolders))


def _listed_local(path: Path) -> ListedObject:
    """A listed local entry; one that vanished or cannot be inspected keeps a null identity."""
    try:
        return _local_object(path)
    except OSError:
        return ListedObject(uri=str(path), size=None, etag=None, mtime=None)


def _local_object(path: Path) -> ListedObject:
    stat = path.stat()  # never opens: a FIFO or device is described, not read
    return ListedObject(
        uri=str(path),
        size=stat.st_size,
        etag=None,
        mtime=datetime.fromtimestamp(stat.st_mtime_ns // 1000 / 1e6, tz=UTC),
    )


def _clean_etag(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


def _dotted(ext: str) -> str:
    ext = ext.strip().lower()
    return ext if ext.startswith(".") else f".{ext}"


# --------------------------------------------------------------------------- Ray Data


def listing_datasource(
    source: str,
    extensions: Iterable[str],
    storage_config: StorageConfig,
    page_size: int = DEFAULT_PAGE_SIZE,
) -> Any:
    """A Ray Data datasource whose single read task streams the listing as page blocks."""
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    wanted = tuple(extensions)

    class ListingDatasource(Datasource):
        """Streams ``source``'s listing; one block per page, nothing held in the driver."""

        def get_name(self) -> str:
            return "ListObjects"

        def estimate_inmemory_data_size(self) -> int | None:
            return None

        def get_read_tasks(
            self, parallelism: int, per_task_row_limit: int | None = None, data_context: Any = None
        ) -> list[ReadTask]:
            def read() -> Iterator[pa.Table]:
                for page in iter_listing_pages(source, wanted, storage_config, page_size):
                    yield page_to_table(page)

            meta = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None, input_files=None)
            return [ReadTask(read, meta, schema=LISTING_SCHEMA)]

    return ListingDatasource()


def manifest_reader(uri: str) -> Callable[..., Any]:
    """The Ray Data reader (``read_text``/``read_csv``/``read_parquet``) for a manifest."""
    import ray.data

    kind = MANIFEST_SUFFIXES.get(PurePosixPath(uri).suffix.lower())
    if kind is None:
        raise StorageError(f"{uri} is not a manifest; use a .txt, .lst, .csv or .parquet file")
    readers: dict[str, Callable[..., Any]] = {
        "text": ray.data.read_text,
        "csv": ray.data.read_csv,
        "parquet": ray.data.read_parquet,
    }
    return readers[kind]


def manifest_to_listing(batch: pa.Table, base: str) -> pa.Table:
    """Normalise a manifest block to :data:`LISTING_SCHEMA`.

    A text manifest has one URI per line (blank lines and ``#`` comments are
    dropped); CSV/Parquet manifests name the URI column ``source_uri``, ``uri``,
    ``path`` or ``key`` and may carry ``object_size``/``object_etag``/``object_mtime``.
    Relative entries are resolved against ``base`` (the manifest's folder).
    """
    column = _uri_column(batch)
    uris = [str(u).strip() if u is not None else "" for u in batch.column(column).to_pylist()]
    keep = [i for i, u in enumerate(uris) if u and not u.startswith("#")]
    out: dict[str, list[Any]] = {"source_uri": [_resolve(uris[i], base) for i in keep]}
    for name in ("object_size", "object_etag", "object_mtime"):
        if name in batch.column_names:
            values = batch.column(name).to_pylist()
            out[name] = [values[i] for i in keep]
        else:
            out[name] = [None] * len(keep)
    return pa.table(out, schema=LISTING_SCHEMA)


def fill_identity(batch: pa.Table, storage_config: StorageConfig) -> pa.Table:
    """Look up size/ETag/mtime of manifest entries that did not give them.

    An entry that cannot be inspected, whatever the cause (gone, unreachable
    endpoint, a scheme we do not read, a name the OS refuses), keeps a null
    identity: every entry stays in the listing, and the read stage turns it into
    an error row with the precise reason.
    """
    rows = batch.to_pylist()
    for row in rows:
        if row["object_size"] is not None:
            continue
        try:
            info = _object_info(row["source_uri"], storage_config)
        except Exception:  # any failure is reported, per row, by the read stage
            continue
        row["object_size"] = info.size
        row["object_etag"] = row["object_etag"] or info.etag
        row["object_mtime"] = row["object_mtime"] or info.mtime
    return pa.Table.from_pylist(rows, schema=LISTING_SCHEMA)


def _object_info(uri: str, storage_config: StorageConfig) -> ListedObject:
    if not storage.is_remote(uri):
        return _local_object(Path(storage.filesystem(uri)[1]))
    fs, path = storage.filesystem(uri, storage_config)
    info = fs.info(path)
    mtime = info.get("LastModified")
    return ListedObject(
        uri=uri,
        size=int(info["size"]),
        etag=_clean_etag(info.get("ETag") or info.get("etag")),
        mtime=mtime if isinstance(mtime, datetime) else None,
    )


def _uri_column(batch: pa.Table) -> str:
    if batch.column_names == ["text"]:
        return "text"
    for name in MANIFEST_URI_COLUMNS:
        if name in batch.column_names:
            return name
    raise StorageError(
        f"manifest has no URI column; name it one of {', '.join(MANIFEST_URI_COLUMNS)}"
    )


def _resolve(entry: str, base: str) -> str:
    # A line carrying credentials keeps no secret: its row names it redacted, and the
    # read stage refuses it (``unsupported_uri``).
    entry = storage.redact_userinfo(entry)
    if "://" in entry or entry.startswith("/"):
        return entry
    return storage.join(base, entry)
