"""Object identity keys and the incremental anti-join.

An object counts as already scored by a model when a committed row of that
model has the same URI and the same identity: size plus ETag when the store
gives one (S3), size plus modification time otherwise (local files). Identities
are hashed to fixed-width keys, kept as one sorted numpy array (16 bytes per
scored object) that Ray puts in the object store once and every filter task
maps read-only; lookups are binary searches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

KEY_BYTES = 16  # blake2b digest size: collisions are negligible even for billions of objects
KEY_DTYPE = np.dtype(f"S{KEY_BYTES}")
_SEPARATOR = "\x1f"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def identity_key(uri: str, size: int | None, etag: str | None, mtime: datetime | None) -> bytes:
    """Fixed-width key of an object's URI and identity.

    The mtime only takes part when there is no ETag, and is taken to whole
    microseconds (what Parquet ``timestamp[us]`` keeps), so a key computed at
    listing time equals the key of the row written for that object.
    """
    stamp = "" if etag or mtime is None else str(_micros(mtime))
    text = _SEPARATOR.join((uri, "" if size is None else str(size), etag or "", stamp))
    return hashlib.blake2b(text.encode("utf-8"), digest_size=KEY_BYTES).digest()


def keys_of(table: pa.Table) -> np.ndarray:
    """Identity keys of a table with ``source_uri``, ``object_size``, ``object_etag``
    and optionally ``object_mtime`` columns, as an array of :data:`KEY_DTYPE`."""
    uris = table.column("source_uri").to_pylist()
    sizes = table.column("object_size").to_pylist()
    etags = table.column("object_etag").to_pylist()
    mtimes: Sequence[datetime | None] = (
        table.column("object_mtime").to_pylist()
        if "object_mtime" in table.column_names
        else [None] * len(uris)
    )
    keys = [identity_key(*row) for row in zip(uris, sizes, etags, mtimes, strict=True)]
    return np.asarray(keys, dtype=KEY_DTYPE)


def sorted_keys(tables: Iterable[pa.Table]) -> np.ndarray:
    """Sorted, de-duplicated keys of all rows in ``tables``."""
    parts = [keys_of(t) for t in tables]
    if not parts:
        return np.empty(0, dtype=KEY_DTYPE)
    return np.unique(np.concatenate(parts))


def contains(sorted_array: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``keys`` are in ``sorted_array`` (sorted, unique)."""
    if sorted_array.size == 0 or keys.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.searchsorted(sorted_array, keys)
    pos = np.minimum(pos, sorted_array.size - 1)
    return np.asarray(sorted_array[pos] == keys)


@dataclass(frozen=True)
class ScoredKeys:
    """Sorted identity keys of already-scored objects.

    ``with_mtime`` says whether the scored rows carried ``object_mtime``; when
    they did not, listing keys are computed without it too, so local files
    (no ETag) are then matched on URI and size alone.
    """

    array: np.ndarray
    with_mtime: bool

    @classmethod
    def empty(cls) -> ScoredKeys:
        """No key: nothing is skipped."""
        return cls(np.empty(0, dtype=KEY_DTYPE), with_mtime=True)

    @classmethod
    def from_table(cls, table: pa.Table) -> ScoredKeys:
        """Keys of a ``scored_identities`` table."""
        return cls(sorted_keys([table]), "object_mtime" in table.column_names)

    def unscored(self, batch: pa.Table) -> pa.Table:
        """Rows of a listing block whose identity has not been scored."""
        if self.array.size == 0 or batch.num_rows == 0:
            return batch
        table = batch if self.with_mtime else batch.drop_columns(["object_mtime"])
        seen = contains(self.array, keys_of(table))
        return batch.filter(pa.array(~seen))


def _micros(moment: datetime) -> int:
    """Whole microseconds since the epoch, exactly (naive times are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)
