"""The results schema: stable, versioned, partition columns only in paths."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from vip2clip.results import (
    FILE_SCHEMA,
    PARTITION_COLUMNS,
    RESULTS_SCHEMA,
    SCHEMA_VERSION,
    RegionStats,
    conform,
)

CONTRACT_COLUMNS = """source_uri object_size object_etag object_mtime run_id run_date model_id
image_score is_anomalous image_threshold pixel_threshold mask_png mask_height mask_width
max_pixel_score anomalous_area_fraction bbox_x0 bbox_y0 bbox_x1 bbox_y1 image_width
image_height status error_reason error_detail read_ms decode_ms inference_ms scored_at
schema_version""".split()  # noqa: SIM905 - reads as the contract
NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)


def test_results_schema_has_every_contract_column() -> None:
    assert set(RESULTS_SCHEMA.names) == set(CONTRACT_COLUMNS)
    assert RESULTS_SCHEMA.names[-2:] == list(PARTITION_COLUMNS)
    assert not set(PARTITION_COLUMNS) & set(FILE_SCHEMA.names)


def test_region_stats_fields_are_column_names() -> None:
    assert set(RegionStats.__dataclass_fields__) <= set(FILE_SCHEMA.names)


def test_conform_orders_casts_and_fills() -> None:
    table = conform(
        {"status": ["ok"], "scored_at": [NOW], "model_id": ["m"], "source_uri": ["s3://b/k"]}
    )
    assert table.schema == FILE_SCHEMA
    assert table.column("schema_version").to_pylist() == [SCHEMA_VERSION]
    assert table.column("image_score").null_count == 1


def test_conform_refuses_partition_unknown_and_missing_columns() -> None:
    base = {"status": ["ok"], "scored_at": [NOW], "model_id": ["m"], "source_uri": ["u"]}
    with pytest.raises(ValueError, match="run_id"):
        conform({**base, "run_id": ["r"]})
    with pytest.raises(ValueError, match="source_uri"):
        conform({k: v for k, v in base.items() if k != "source_uri"})
    with pytest.raises(ValueError, match="nulls"):
        conform({**base, "status": [None]})


def test_conform_accepts_a_table() -> None:
    table = pa.table(
        {
            "source_uri": ["u"],
            "model_id": ["m"],
            "status": ["error"],
            "scored_at": [NOW],
            "error_reason": ["not_an_image"],
        }
    )
    assert conform(table).column("error_reason").to_pylist() == ["not_an_image"]
