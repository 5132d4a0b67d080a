"""The CPU stages of the scoring pipeline, as plain functions on Arrow blocks.

Each function maps one ``pyarrow.Table`` batch to the next stage's table and
turns every per-object failure into an error row (``status = error`` plus a
stable reason code), so a bad object never fails a task. They know nothing of
Ray scheduling and are unit-tested directly; ``pipeline.py`` chains them with
``map_batches``. Intermediate columns:

* listing: ``source_uri, object_size, object_etag, object_mtime``
* read: + ``status, error_reason, error_detail, read_ms, data`` (encoded bytes)
* decoded: ``data`` replaced by ``pixels`` (uint8 ``S x S x 3`` resized image, raw
  bytes) and ``image_width, image_height, decode_ms``
* scored (inference actor): ``pixels`` replaced by ``anomaly_map`` (float32
  ``S x S`` raw bytes), ``map_size, image_score, model_id, image_threshold,
  pixel_threshold, inference_ms``
* results: :data:`vip2clip.results.schema.RESULTS_SCHEMA`
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pyarrow as pa

from vip2clip.data.decode import CORRUPT_IMAGE, READ_FAILED, decode_image
from vip2clip.data.preprocess import resize_to_model
from vip2clip.errors import ImageDecodeError
from vip2clip.results.masks import encode_mask
from vip2clip.results.regions import region_stats
from vip2clip.results.schema import (
    RESULTS_SCHEMA,
    STATUS_ERROR,
    STATUS_OK,
    check_run_date,
    conform,
)
from vip2clip.scoring.reads import MAX_OBJECT_BYTES_DEFAULT, ReadError, read_bounded
from vip2clip.scoring.source import LISTING_SCHEMA
from vip2clip.storage import StorageConfig

READ_RETRY_BASE_S = 0.2  # first back-off; doubles per attempt
DETAIL_MAX_CHARS = 300
MS_PER_S = 1000.0
PIXEL_DTYPE = np.uint8
MAP_DTYPE = np.float32

_OUTCOME_FIELDS = [
    pa.field("status", pa.string(), nullable=False),
    pa.field("error_reason", pa.string()),
    pa.field("error_detail", pa.string()),
    pa.field("read_ms", pa.float64()),
]
READ_SCHEMA = pa.schema([*LISTING_SCHEMA, *_OUTCOME_FIELDS, pa.field("data", pa.large_binary())])
_IMAGE_FIELDS = [
    pa.field("decode_ms", pa.float64()),
    pa.field("image_width", pa.int32()),
    pa.field("image_height", pa.int32()),
]
DECODED_SCHEMA = pa.schema(
    [*LISTING_SCHEMA, *_OUTCOME_FIELDS, *_IMAGE_FIELDS, pa.field("pixels", pa.large_binary())]
)
SCORED_SCHEMA = pa.schema(
    [
        *LISTING_SCHEMA,
        *_OUTCOME_FIELDS,
        *_IMAGE_FIELDS,
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("image_score", pa.float64()),
        pa.field("image_threshold", pa.float64()),
        pa.field("pixel_threshold", pa.float64()),
        pa.field("map_size", pa.int32()),
        pa.field("anomaly_map", pa.large_binary()),
        pa.field("inference_ms", pa.float64()),
    ]
)


# ----------------------------------------------------------------------------- read


def read_objects(
    batch: pa.Table,
    storage_config: StorageConfig,
    attempts: int,
    max_object_bytes: int = MAX_OBJECT_BYTES_DEFAULT,
) -> pa.Table:
    """Listing block -> read block: the bytes of each object, or an error row."""
    rows = batch.select(LISTING_SCHEMA.names).to_pylist()
    for row in rows:
        row["data"] = _read_into(row, storage_config, attempts, max_object_bytes)
    return pa.Table.from_pylist(rows, schema=READ_SCHEMA)


def _read_into(
    row: dict[str, Any], storage_config: StorageConfig, attempts: int, max_object_bytes: int
) -> bytes | None:
    """Read ``row``'s object, set its outcome and ``read_ms``; the bytes or ``None``."""
    start = time.perf_counter()
    data: bytes | None = None
    try:
        data = read_object(
            row["source_uri"],
            storage_config,
            attempts,
            max_bytes=max_object_bytes,
            known_size=row["object_size"],
        )
        _set_ok(row)
    except ReadError as failure:
        _set_error(row, failure.reason, failure.detail)
    row["read_ms"] = (time.perf_counter() - start) * MS_PER_S
    return data


def read_object(
    uri: str,
    storage_config: StorageConfig,
    attempts: int,
    sleep: Callable[[float], None] = time.sleep,
    *,
    max_bytes: int = MAX_OBJECT_BYTES_DEFAULT,
    known_size: int | None = None,
) -> bytes:
    """Read one object under the size cap, retrying transient failures.

    Refusals (:mod:`vip2clip.scoring.reads`: too large, not a file, name too
    long, unsupported URI) and missing or forbidden objects are final.

    Raises:
        ReadError: one of those reasons, or ``read_failed`` after ``attempts``.
    """
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            return read_bounded(uri, storage_config, max_bytes, known_size)
        except ReadError:
            raise
        except Exception as exc:  # network resets, throttling past botocore's retries, ...
            last = exc
            if attempt + 1 < attempts:
                sleep(READ_RETRY_BASE_S * 2**attempt)
    raise ReadError(READ_FAILED, f"after {attempts} attempts: {_detail(last)}")


# ----------------------------------------------------------------------------- decode


def decode_objects(batch: pa.Table, image_size: int, max_pixels: int) -> pa.Table:
    """Read block -> decoded block: each image resized to the model grid, or an error row.

    Only the resize half of :func:`vip2clip.data.preprocess.preprocess_image`
    runs here; its normalisation half runs in the inference actor on the
    ``uint8`` pixels (4x less data through the object store, same numbers).
    """
    out = []
    for row in batch.to_pylist():
        data = row.pop("data")
        row.update(decode_ms=None, image_width=None, image_height=None, pixels=None)
        if row["status"] == STATUS_OK:
            start = time.perf_counter()
            _decode_into(row, data, image_size, max_pixels)
            row["decode_ms"] = (time.perf_counter() - start) * MS_PER_S
        out.append(row)
    return pa.Table.from_pylist(out, schema=DECODED_SCHEMA)


def _decode_into(row: dict[str, Any], data: bytes, image_size: int, max_pixels: int) -> None:
    try:
        image = decode_image(data, max_pixels=max_pixels)
        resized = np.asarray(resize_to_model(image, image_size), dtype=PIXEL_DTYPE)
    except ImageDecodeError as exc:
        _set_error(row, exc.reason, exc.detail)
        return
    except Exception as exc:  # a decoder bug must still end as a row, never a failed task
        _set_error(row, CORRUPT_IMAGE, _detail(exc))
        return
    row["image_width"], row["image_height"] = image.size
    row["pixels"] = resized.tobytes()


def load_objects(
    batch: pa.Table,
    storage_config: StorageConfig,
    attempts: int,
    image_size: int,
    max_pixels: int,
    max_object_bytes: int = MAX_OBJECT_BYTES_DEFAULT,
) -> pa.Table:
    """Listing block -> decoded block: read then decode, in one CPU task (bytes stay local).

    One object at a time: a task holds the encoded bytes of a single object (at
    most ``max_object_bytes``) plus the small resized pixels of those before it.
    """
    out = []
    for row in batch.select(LISTING_SCHEMA.names).to_pylist():
        data = _read_into(row, storage_config, attempts, max_object_bytes)
        row.update(decode_ms=None, image_width=None, image_height=None, pixels=None)
        if data is not None:
            start = time.perf_counter()
            _decode_into(row, data, image_size, max_pixels)
            row["decode_ms"] = (time.perf_counter() - start) * MS_PER_S
        del data
        out.append(row)
    return pa.Table.from_pylist(out, schema=DECODED_SCHEMA)


def pixels_array(blob: bytes, image_size: int) -> np.ndarray:
    """The decoded stage's ``pixels`` bytes -> uint8 ``(S, S, 3)``."""
    return np.frombuffer(blob, dtype=PIXEL_DTYPE).reshape(image_size, image_size, 3)


def map_array(blob: bytes, size: int) -> np.ndarray:
    """The scored stage's ``anomaly_map`` bytes -> float32 ``(S, S)``."""
    return np.frombuffer(blob, dtype=MAP_DTYPE).reshape(size, size)


# ----------------------------------------------------------------------------- results


def to_results(
    batch: pa.Table, run_id: str, run_date: str | date, scored_at: datetime | None = None
) -> pa.Table:
    """Scored block -> results rows (:data:`RESULTS_SCHEMA`): decision, mask, region stats."""
    moment = scored_at or datetime.now(UTC)
    day = check_run_date(run_date)
    rows = [_result_row(row, moment) for row in batch.to_pylist()]
    columns = {name: [r.get(name) for r in rows] for name in _RESULT_COLUMNS}
    table = pa.table(columns, schema=_RESULT_INPUT_SCHEMA)
    table = table.append_column("run_id", pa.array([run_id] * table.num_rows, pa.string()))
    table = table.append_column("run_date", pa.array([day] * table.num_rows, pa.date32()))
    return conform(table)


def _result_row(row: dict[str, Any], moment: datetime) -> dict[str, Any]:
    blob = row.pop("anomaly_map")
    size = row.pop("map_size")
    row["scored_at"] = moment
    if row["status"] != STATUS_OK:
        return row
    anomaly = map_array(blob, size)
    stats = region_stats(anomaly, row["pixel_threshold"], (row["image_width"], row["image_height"]))
    row.update(
        is_anomalous=bool(row["image_score"] >= row["image_threshold"]),
        mask_png=encode_mask(anomaly),
        mask_height=size,
        mask_width=size,
        max_pixel_score=stats.max_pixel_score,
        anomalous_area_fraction=stats.anomalous_area_fraction,
        bbox_x0=stats.bbox_x0,
        bbox_y0=stats.bbox_y0,
        bbox_x1=stats.bbox_x1,
        bbox_y1=stats.bbox_y1,
    )
    return row


# Columns postprocessing adds, typed as in the results schema.
_POSTPROCESS_COLUMNS = (
    "is_anomalous",
    "mask_png",
    "mask_height",
    "mask_width",
    "max_pixel_score",
    "anomalous_area_fraction",
    "bbox_x0",
    "bbox_y0",
    "bbox_x1",
    "bbox_y1",
)
_RESULT_INPUT_SCHEMA = pa.schema(
    [
        *[f for f in SCORED_SCHEMA if f.name not in ("anomaly_map", "map_size")],
        pa.field("scored_at", pa.timestamp("us", tz="UTC"), nullable=False),
        *[RESULTS_SCHEMA.field(name) for name in _POSTPROCESS_COLUMNS],
    ]
)
_RESULT_COLUMNS = _RESULT_INPUT_SCHEMA.names


# ----------------------------------------------------------------------------- helpers


def _set_ok(row: dict[str, Any]) -> None:
    row.update(status=STATUS_OK, error_reason=None, error_detail=None)


def _set_error(row: dict[str, Any], reason: str, detail: str) -> None:
    row.update(status=STATUS_ERROR, error_reason=reason, error_detail=detail[:DETAIL_MAX_CHARS])


def _detail(exc: BaseException | None) -> str:
    return f"{type(exc).__name__}: {exc}"[:DETAIL_MAX_CHARS] if exc else "unknown error"
