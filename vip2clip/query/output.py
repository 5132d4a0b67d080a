"""Write query rows to CSV or Parquet, locally or to an object store, batch by batch."""

from __future__ import annotations

import base64
import enum
from pathlib import PurePosixPath
from typing import IO

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from vip2clip.errors import ConfigError, StorageError
from vip2clip.storage import StorageConfig, filesystem, is_remote


class OutputFormat(enum.StrEnum):
    """File formats ``vip2clip query --output`` writes."""

    CSV = "csv"
    PARQUET = "parquet"


_SUFFIXES = {
    ".csv": OutputFormat.CSV,
    ".parquet": OutputFormat.PARQUET,
    ".pq": OutputFormat.PARQUET,
}


def format_for(uri: str, explicit: OutputFormat | str | None = None) -> OutputFormat:
    """The output format: ``explicit`` if given, else from the file suffix.

    Raises:
        ConfigError: when neither says which format to write.
    """
    if explicit is not None:
        return OutputFormat(explicit)
    suffix = PurePosixPath(uri.split("://", 1)[-1]).suffix.lower()
    if suffix not in _SUFFIXES:
        raise ConfigError(f"cannot tell the format of {uri!r}: name it .csv or .parquet")
    return _SUFFIXES[suffix]


def write_rows(
    rows: pa.RecordBatchReader,
    uri: str,
    output_format: OutputFormat | str,
    storage: StorageConfig | None = None,
) -> int:
    """Stream ``rows`` into a CSV or Parquet file at ``uri``; return the number of rows.

    CSV cannot hold bytes, so binary columns (``mask_png``) are written base64-encoded;
    Parquet keeps every type as it is.
    """
    fs, path = filesystem(uri, storage)
    if not is_remote(uri):
        fs.makedirs(str(PurePosixPath(path).parent), exist_ok=True)
    try:
        with fs.open(path, "wb") as handle:
            if OutputFormat(output_format) is OutputFormat.PARQUET:
                return _write_parquet(rows, handle)
            return _write_csv(rows, handle)
    except OSError as exc:
        raise StorageError(f"{uri}: could not write ({exc})") from None


def _write_parquet(rows: pa.RecordBatchReader, handle: IO[bytes]) -> int:
    count = 0
    with pq.ParquetWriter(handle, rows.schema) as writer:
        for batch in rows:
            writer.write_batch(batch)
            count += batch.num_rows
    return count


def _write_csv(rows: pa.RecordBatchReader, handle: IO[bytes]) -> int:
    schema = csv_schema(rows.schema)
    count = 0
    with pacsv.CSVWriter(handle, schema) as writer:
        for batch in rows:
            writer.write_batch(csv_batch(batch, schema))
            count += batch.num_rows
    return count


def csv_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with binary columns as (base64) strings."""
    return pa.schema(
        [pa.field(f.name, pa.string()) if _is_binary(f.type) else f for f in schema],
        metadata=schema.metadata,
    )


def csv_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """``batch`` with its binary columns base64-encoded, to match :func:`csv_schema`."""
    columns = [_base64(column) if _is_binary(column.type) else column for column in batch.columns]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _base64(column: pa.Array) -> pa.Array:
    values = [None if v is None else base64.b64encode(v).decode() for v in column.to_pylist()]
    return pa.array(values, pa.string())


def _is_binary(data_type: pa.DataType) -> bool:
    return bool(
        pa.types.is_binary(data_type)
        or pa.types.is_large_binary(data_type)
        or pa.types.is_fixed_size_binary(data_type)
        or pa.types.is_binary_view(data_type)
    )


__all__ = ["OutputFormat", "csv_batch", "csv_schema", "format_for", "write_rows"]
