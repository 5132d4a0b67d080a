"""The results schema: one Iceberg definition, stable field ids, an Arrow form derived from it."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from vip2clip.errors import ConfigError
from vip2clip.results import (
    ICEBERG_SCHEMA,
    IDENTITY_COLUMNS,
    RESULTS_SCHEMA,
    SCHEMA_VERSION,
    RegionStats,
    check_run_date,
    check_run_id,
    conform,
)
from vip2clip.results.schema import PARTITION_SPEC, SORT_ORDER

CONTRACT_COLUMNS = """run_id run_date source_uri object_size object_etag object_mtime model_id
image_score is_anomalous image_threshold pixel_threshold mask_png mask_height mask_width
max_pixel_score anomalous_area_fraction bbox_x0 bbox_y0 bbox_x1 bbox_y1 image_width
image_height status error_reason error_detail read_ms decode_ms inference_ms scored_at
schema_version""".split()  # noqa: SIM905 - reads as the contract
REQUIRED = {"run_id", "run_date", "source_uri", "model_id", "status", "scored_at"}
NOW = dt.datetime(2026, 11, 25, tzinfo=dt.UTC)
BASE = {
    "run_id": ["night-1"],
    "run_date": [dt.date(2026, 11, 25)],
    "status": ["ok"],
    "scored_at": [NOW],
    "model_id": ["m"],
    "source_uri": ["s3://b/k"],
}


def test_results_schema_has_every_contract_column_in_order() -> None:
    assert RESULTS_SCHEMA.names == CONTRACT_COLUMNS
    assert {f.name for f in RESULTS_SCHEMA if not f.nullable} == REQUIRED | {"schema_version"}
    assert RESULTS_SCHEMA.field("run_date").type == pa.date32()
    assert RESULTS_SCHEMA.field("scored_at").type == pa.timestamp("us", tz="UTC")


def test_iceberg_field_ids_are_stable() -> None:
    # Iceberg resolves columns by id: renumbering would misread every existing file.
    ids = {field.name: field.field_id for field in ICEBERG_SCHEMA.fields}
    assert ids == {name: i for i, name in enumerate(CONTRACT_COLUMNS, start=1)}
    assert all(field.doc for field in ICEBERG_SCHEMA.fields)


def test_partitioning_and_sort_order_name_schema_columns() -> None:
    sources = [ICEBERG_SCHEMA.find_column_name(f.source_id) for f in PARTITION_SPEC.fields]
    assert sources == ["run_date", "model_id"]
    assert [ICEBERG_SCHEMA.find_column_name(f.source_id) for f in SORT_ORDER.fields] == [
        "source_uri"
    ]
    assert set(IDENTITY_COLUMNS) <= set(CONTRACT_COLUMNS)


def test_region_stats_fields_are_column_names() -> None:
    assert set(RegionStats.__dataclass_fields__) <= set(RESULTS_SCHEMA.names)


def test_conform_orders_casts_and_fills() -> None:
    table = conform({**BASE, "run_date": ["2026-11-25"]} | {"object_size": [3]})
    assert table.schema == RESULTS_SCHEMA
    assert table.column("schema_version").to_pylist() == [SCHEMA_VERSION]
    assert table.column("image_score").null_count == 1
    assert table.column("run_date").to_pylist() == [dt.date(2026, 11, 25)]


def test_conform_refuses_unknown_missing_and_null_columns() -> None:
    with pytest.raises(ValueError, match="not in the results schema"):
        conform({**BASE, "run": ["r"]})
    for name in sorted(REQUIRED):
        with pytest.raises(ValueError, match=name):
            conform({k: v for k, v in BASE.items() if k != name})
    with pytest.raises(ValueError, match="nulls"):
        conform({**BASE, "status": [None]})


def test_conform_accepts_a_table() -> None:
    table = pa.table({**BASE, "status": ["error"], "error_reason": ["not_an_image"]})
    assert conform(table).column("error_reason").to_pylist() == ["not_an_image"]


def test_run_ids_and_dates_are_checked() -> None:
    assert check_run_id("night-2026-11-25.a_1") == "night-2026-11-25.a_1"
    for bad in ("", "-x", "a/b", "a=b", "a b", "x" * 129):
        with pytest.raises(ConfigError, match="run id"):
            check_run_id(bad)
    assert check_run_date("2026-11-25") == dt.date(2026, 11, 25)
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        check_run_date("25/11/2026")
    with pytest.raises(ConfigError, match="not a datetime"):
        check_run_date(NOW)
