"""The versioned results schema: one row per input object per run.

The table is Hive-partitioned by ``run_date`` and ``run_id``; those two columns
live in the directory names, never inside the Parquet files (engines reject a
column that is both). Writers therefore produce :data:`FILE_SCHEMA`; readers
see :data:`RESULTS_SCHEMA` (= file columns + partition columns). Column
meanings are documented in ``docs/results-schema.md``; change both together
and bump :data:`SCHEMA_VERSION` (additive changes only: new nullable columns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 1

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUSES = (STATUS_OK, STATUS_ERROR)

RUN_DATE = "run_date"
RUN_ID = "run_id"
PARTITION_COLUMNS = (RUN_DATE, RUN_ID)

_UTC_MICROS = pa.timestamp("us", tz="UTC")

PARTITION_SCHEMA = pa.schema(
    [
        pa.field(RUN_DATE, pa.date32(), nullable=False),
        pa.field(RUN_ID, pa.string(), nullable=False),
    ]
)

FILE_SCHEMA = pa.schema(
    [
        # object identity
        pa.field("source_uri", pa.string(), nullable=False),
        pa.field("object_size", pa.int64()),
        pa.field("object_etag", pa.string()),
        pa.field("object_mtime", _UTC_MICROS),
        # model and decision
        pa.field("model_id", pa.string(), nullable=False),
        pa.field("image_score", pa.float64()),
        pa.field("is_anomalous", pa.bool_()),
        pa.field("image_threshold", pa.float64()),
        pa.field("pixel_threshold", pa.float64()),
        # mask and region statistics
        pa.field("mask_png", pa.binary()),
        pa.field("mask_height", pa.int32()),
        pa.field("mask_width", pa.int32()),
        pa.field("max_pixel_score", pa.float64()),
        pa.field("anomalous_area_fraction", pa.float64()),
        pa.field("bbox_x0", pa.int32()),
        pa.field("bbox_y0", pa.int32()),
        pa.field("bbox_x1", pa.int32()),
        pa.field("bbox_y1", pa.int32()),
        pa.field("image_width", pa.int32()),
        pa.field("image_height", pa.int32()),
        # outcome and timings
        pa.field("status", pa.string(), nullable=False),
        pa.field("error_reason", pa.string()),
        pa.field("error_detail", pa.string()),
        pa.field("read_ms", pa.float64()),
        pa.field("decode_ms", pa.float64()),
        pa.field("inference_ms", pa.float64()),
        pa.field("scored_at", _UTC_MICROS, nullable=False),
        pa.field("schema_version", pa.int32(), nullable=False),
    ],
    metadata={"vip2clip.schema_version": str(SCHEMA_VERSION)},
)

RESULTS_SCHEMA = pa.schema(
    list(FILE_SCHEMA) + list(PARTITION_SCHEMA),
    metadata={"vip2clip.schema_version": str(SCHEMA_VERSION)},
)

IDENTITY_COLUMNS = ("source_uri", "object_etag", "object_size", "object_mtime")


def empty_file_table() -> pa.Table:
    """A zero-row table with :data:`FILE_SCHEMA`."""
    return FILE_SCHEMA.empty_table()


def conform(rows: pa.Table | Mapping[str, Sequence[Any]]) -> pa.Table:
    """Build a :data:`FILE_SCHEMA` table from a table or a column mapping.

    Columns are reordered and cast to the schema's types; missing nullable
    columns become nulls; ``schema_version`` defaults to :data:`SCHEMA_VERSION`.
    Partition columns and unknown columns are rejected (they would break
    Hive-partitioned readers or drift the schema silently).

    Raises:
        ValueError: on unknown or partition columns, or a missing required column.
    """
    table = rows if isinstance(rows, pa.Table) else pa.table(dict(rows))
    unknown = set(table.column_names) - set(FILE_SCHEMA.names)
    if unknown:
        raise ValueError(f"columns not in the results file schema: {sorted(unknown)}")
    arrays = [_column(table, field) for field in FILE_SCHEMA]
    return pa.Table.from_arrays(arrays, schema=FILE_SCHEMA)


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


def same_columns(schema: pa.Schema, expected: pa.Schema = FILE_SCHEMA) -> bool:
    """Whether ``schema`` has exactly the expected column names and types (order included)."""
    return [(f.name, f.type) for f in schema] == [(f.name, f.type) for f in expected]
