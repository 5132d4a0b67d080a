"""Results of batch scoring: an Apache Iceberg table, its schema, masks and region statistics.

>>> from vip2clip.results import ResultsTable, TableRef, resolve_catalog, decode_mask
"""

from vip2clip.results.catalog import CatalogSpec, resolve_catalog
from vip2clip.results.masks import MASK_QUANTISATION_ERROR, decode_mask, encode_mask
from vip2clip.results.regions import RegionStats, region_stats
from vip2clip.results.schema import (
    ICEBERG_SCHEMA,
    IDENTITY_COLUMNS,
    RESULTS_SCHEMA,
    SCHEMA_VERSION,
    STATUS_ERROR,
    STATUS_OK,
    check_run_date,
    check_run_id,
    conform,
)
from vip2clip.results.table import (
    ResultsTable,
    RunState,
    SnapshotInfo,
    TableRef,
    check_identifier,
    write_data_files,
)

__all__ = [
    "ICEBERG_SCHEMA",
    "IDENTITY_COLUMNS",
    "MASK_QUANTISATION_ERROR",
    "RESULTS_SCHEMA",
    "SCHEMA_VERSION",
    "STATUS_ERROR",
    "STATUS_OK",
    "CatalogSpec",
    "RegionStats",
    "ResultsTable",
    "RunState",
    "SnapshotInfo",
    "TableRef",
    "check_identifier",
    "check_run_date",
    "check_run_id",
    "conform",
    "decode_mask",
    "encode_mask",
    "region_stats",
    "resolve_catalog",
    "write_data_files",
]
