"""Identity keys and the incremental anti-join."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from vip2clip.scoring import identity
from vip2clip.scoring.source import LISTING_SCHEMA

T0 = datetime(2026, 11, 25, 1, 2, 3, 456789, tzinfo=UTC)


def _listing(rows: list[tuple[str, int, str | None, datetime | None]]) -> pa.Table:
    cols = list(zip(*rows, strict=True))
    names = LISTING_SCHEMA.names
    return pa.table({n: list(c) for n, c in zip(names, cols, strict=True)}, schema=LISTING_SCHEMA)


def test_key_depends_on_uri_size_and_etag() -> None:
    base = identity.identity_key("s3://b/x.png", 10, "e1", T0)
    assert base == identity.identity_key("s3://b/x.png", 10, "e1", T0 + timedelta(days=1))
    assert base != identity.identity_key("s3://b/x.png", 11, "e1", T0)
    assert base != identity.identity_key("s3://b/x.png", 10, "e2", T0)
    assert base != identity.identity_key("s3://b/y.png", 10, "e1", T0)
    assert len(base) == identity.KEY_BYTES


def test_mtime_counts_only_without_etag_and_to_the_microsecond() -> None:
    key = identity.identity_key("/x.png", 10, None, T0)
    assert key != identity.identity_key("/x.png", 10, None, T0 + timedelta(microseconds=1))
    naive = T0.replace(tzinfo=None)
    assert key == identity.identity_key("/x.png", 10, None, naive)


def test_parquet_roundtrip_of_mtime_keeps_the_key() -> None:
    table = _listing([("/x.png", 10, None, T0)])
    roundtrip = pa.Table.from_pylist(table.to_pylist(), schema=LISTING_SCHEMA)
    assert identity.keys_of(table)[0] == identity.keys_of(roundtrip)[0]


def test_contains_on_sorted_keys() -> None:
    scored = identity.sorted_keys([_listing([("a", 1, "e", None), ("b", 2, "e", None)])])
    probe = identity.keys_of(_listing([("b", 2, "e", None), ("c", 3, "e", None)]))
    assert identity.contains(scored, probe).tolist() == [True, False]
    assert identity.contains(np.empty(0, identity.KEY_DTYPE), probe).tolist() == [False, False]


def test_unscored_drops_exactly_the_same_identities() -> None:
    scored = _listing([("a", 1, "e", None), ("b", 2, "old", None)])
    keys = identity.ScoredKeys.from_table(scored)
    listing = _listing([("a", 1, "e", T0), ("b", 2, "new", T0), ("c", 3, "e", T0)])
    kept = keys.unscored(listing)
    assert kept.column("source_uri").to_pylist() == ["b", "c"]  # b changed, c is new
    assert kept.schema == LISTING_SCHEMA


def test_without_mtime_in_scored_rows_local_files_match_on_size() -> None:
    scored = pa.table(
        {"source_uri": ["/a.png", "/b.png"], "object_etag": [None, None], "object_size": [1, 2]},
        schema=pa.schema(
            [("source_uri", pa.string()), ("object_etag", pa.string()), ("object_size", pa.int64())]
        ),
    )
    keys = identity.ScoredKeys.from_table(scored)
    assert not keys.with_mtime
    listing = _listing([("/a.png", 1, None, T0), ("/b.png", 5, None, T0)])
    assert keys.unscored(listing).column("source_uri").to_pylist() == ["/b.png"]


def test_with_mtime_a_touched_local_file_is_rescored() -> None:
    keys = identity.ScoredKeys.from_table(_listing([("/a.png", 1, None, T0)]))
    assert keys.with_mtime
    later = T0 + timedelta(seconds=1)
    listing = _listing([("/a.png", 1, None, T0), ("/a.png", 1, None, later)])
    assert keys.unscored(listing).column("object_mtime").to_pylist() == [later]
