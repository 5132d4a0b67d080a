"""Test helpers: result rows and staged Parquet files, as a scoring run writes them."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vip2clip.results import FILE_SCHEMA, conform, encode_mask
from vip2clip.storage import StorageConfig, filesystem, join

MAP_SIDE = 16


def result_rows(
    uris: list[str],
    *,
    model_id: str = "model-a",
    status: str = "ok",
    error_reason: str | None = None,
    etag: str = "etag-1",
    seed: int = 0,
) -> pa.Table:
    """A FILE_SCHEMA table with one plausible row per URI."""
    rng = np.random.default_rng(seed)
    n = len(uris)
    ok = status == "ok"
    now = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)
    masks = [encode_mask(rng.random((MAP_SIDE, MAP_SIDE))) if ok else None for _ in uris]
    return conform(
        {
            "source_uri": uris,
            "object_size": [100 + i for i in range(n)],
            "object_etag": [etag] * n,
            "model_id": [model_id] * n,
            "image_score": rng.random(n).tolist() if ok else [None] * n,
            "mask_png": masks,
            "status": [status] * n,
            "error_reason": [error_reason] * n,
            "scored_at": [now] * n,
        }
    )


def stage(
    staging_uri: str,
    table: pa.Table,
    name: str = "part-0.parquet",
    storage: StorageConfig | None = None,
) -> str:
    """Write ``table`` as one Parquet file into a run's staging folder; return its URI."""
    uri = join(staging_uri, name)
    fs, path = filesystem(uri, storage)
    fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(path, "wb") as handle:
        pq.write_table(table, handle)
    return uri


def uris(prefix: str, count: int, start: int = 0) -> list[str]:
    """``count`` object URIs under ``prefix``."""
    return [f"{prefix}/img-{i:04d}.png" for i in range(start, start + count)]


__all__ = ["FILE_SCHEMA", "result_rows", "stage", "uris"]
