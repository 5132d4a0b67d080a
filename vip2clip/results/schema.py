"""The versioned results schema: one row per input object per run.

The Iceberg schema below is the single definition; its field ids are stable
(Iceberg resolves columns by id, so renames and additions never break old
snapshots) and its docs travel into every engine's catalog. The Arrow form
(:data:`RESULTS_SCHEMA`) is derived from it. Column meanings are documented in
``docs/results-schema.md``; change both together and bump
:data:`SCHEMA_VERSION` (additive changes only: new optional columns with new ids).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import IdentityTransform
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    NestedField,
    StringType,
    TimestamptzType,
)

from vip2clip.errors import ConfigError

SCHEMA_VERSION = 2

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUSES = (STATUS_OK, STATUS_ERROR)

# Safe in a path segment, a snapshot property and a branch name: no '/', '=', '%' or spaces.
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def _field(field_id: int, name: str, kind: Any, doc: str, required: bool = False) -> NestedField:
    return NestedField(field_id, name, kind, required=required, doc=doc)


ICEBERG_SCHEMA = Schema(
    # run
    _field(1, "run_id", StringType(), "id of the scoring run that wrote the row", True),
    _field(2, "run_date", DateType(), "the run's night (partition)", True),
    # object identity
    _field(3, "source_uri", StringType(), "URI of the input object as listed", True),
    _field(4, "object_size", LongType(), "object size in bytes at listing time"),
    _field(5, "object_etag", StringType(), "S3 ETag at listing time"),
    _field(6, "object_mtime", TimestamptzType(), "last-modified time at listing time"),
    # model and decision
    _field(7, "model_id", StringType(), "content digest of backbone, learner, settings", True),
    _field(8, "image_score", DoubleType(), "image anomaly score in [0, 1]"),
    _field(9, "is_anomalous", BooleanType(), "image_score >= image_threshold"),
    _field(10, "image_threshold", DoubleType(), "threshold used for is_anomalous"),
    _field(11, "pixel_threshold", DoubleType(), "threshold used for region statistics"),
    # mask and region statistics
    _field(12, "mask_png", BinaryType(), "anomaly map as an 8-bit grey PNG"),
    _field(13, "mask_height", IntegerType(), "mask height in pixels"),
    _field(14, "mask_width", IntegerType(), "mask width in pixels"),
    _field(15, "max_pixel_score", DoubleType(), "maximum of the anomaly map"),
    _field(16, "anomalous_area_fraction", DoubleType(), "share of pixels >= pixel_threshold"),
    _field(17, "bbox_x0", IntegerType(), "largest region, left (original pixels)"),
    _field(18, "bbox_y0", IntegerType(), "largest region, top (original pixels)"),
    _field(19, "bbox_x1", IntegerType(), "largest region, right, exclusive"),
    _field(20, "bbox_y1", IntegerType(), "largest region, bottom, exclusive"),
    _field(21, "image_width", IntegerType(), "original image width"),
    _field(22, "image_height", IntegerType(), "original image height"),
    # outcome and timings
    _field(23, "status", StringType(), "ok or error", True),
    _field(24, "error_reason", StringType(), "stable error code; null when ok"),
    _field(25, "error_detail", StringType(), "human-readable detail, no credentials"),
    _field(26, "read_ms", DoubleType(), "time spent reading the object"),
    _field(27, "decode_ms", DoubleType(), "time spent decoding and resizing"),
    _field(28, "inference_ms", DoubleType(), "model time (batch time / batch size)"),
    _field(29, "scored_at", TimestamptzType(), "when the row was produced", True),
    _field(30, "schema_version", IntegerType(), "schema version of the row", True),
)

RESULTS_SCHEMA: pa.Schema = ICEBERG_SCHEMA.as_arrow()
"""Arrow form of :data:`ICEBERG_SCHEMA` (what writers produce and readers get)."""

# Partitioned by night, then model: the nightly queries ("last night's anomalies") and the
# incremental skip check (one model's rows) each prune to their partitions.
PARTITION_SPEC = PartitionSpec(
    PartitionField(source_id=2, field_id=1000, transform=IdentityTransform(), name="run_date"),
    PartitionField(source_id=7, field_id=1001, transform=IdentityTransform(), name="model_id"),
)
# Files are sorted by URI: tight per-file URI bounds let prefix filters skip whole files.
SORT_ORDER = SortOrder(SortField(source_id=3, transform=IdentityTransform()))

IDENTITY_COLUMNS = ("source_uri", "object_etag", "object_size", "object_mtime")


def conform(rows: pa.Table | Mapping[str, Sequence[Any]]) -> pa.Table:
    """Build a :data:`RESULTS_SCHEMA` table from a table or a column mapping.

    Columns are reordered and cast to the schema's types; missing optional
    columns become nulls; ``schema_version`` defaults to :data:`SCHEMA_VERSION`.

    Raises:
        ValueError: on unknown columns, or a missing or null required column.
    """
    table = rows if isinstance(rows, pa.Table) else pa.table(dict(rows))
    unknown = set(table.column_names) - set(RESULTS_SCHEMA.names)
    if unknown:
        raise ValueError(f"columns not in the results schema: {sorted(unknown)}")
    arrays = [_column(table, field) for field in RESULTS_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=RESULTS_SCHEMA)


def _column(table: pa.Table, field: pa.Field) -> pa.ChunkedArray | pa.Array:
    if field.name in table.column_names:
        column = table.column(field.name)
        if not field.nullable and column.null_count:
            raise ValueError(f"column {field.name!r} must not contain nulls")
        return column.cast(field.type)
    if field.name == "schema_version":
        return pa.array([SCHEMA_VERSION] * table.num_rows, type=field.type)
    if not field.nullable:
        raise ValueError(f"required column {field.name!r} is missing")
    return pa.nulls(table.num_rows, type=field.type)


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is safe as a path segment, property value and branch name."""
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ConfigError(
            f"run id {run_id!r} is invalid: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return run_id


def check_run_date(run_date: str | dt.date) -> dt.date:
    """Return ``run_date`` as a date, or raise :class:`ConfigError`."""
    if isinstance(run_date, dt.datetime):
        raise ConfigError(f"run date must be a date, not a datetime: {run_date!r}")
    if isinstance(run_date, dt.date):
        return run_date
    try:
        return dt.date.fromisoformat(run_date)
    except (TypeError, ValueError):
        raise ConfigError(f"run date {run_date!r} is invalid: use YYYY-MM-DD") from None
