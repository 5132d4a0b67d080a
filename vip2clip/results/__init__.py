"""Results of batch scoring: versioned schema, mask encoding, region statistics, commits.

>>> from vip2clip.results import ResultsStore, FILE_SCHEMA, encode_mask, region_stats
"""

from vip2clip.results.manifest import CommittedFile, Manifest, check_run_date, check_run_id
from vip2clip.results.masks import MASK_QUANTISATION_ERROR, decode_mask, encode_mask
from vip2clip.results.regions import RegionStats, region_stats
from vip2clip.results.schema import (
    FILE_SCHEMA,
    IDENTITY_COLUMNS,
    PARTITION_COLUMNS,
    PARTITION_SCHEMA,
    RESULTS_SCHEMA,
    SCHEMA_VERSION,
    STATUS_ERROR,
    STATUS_OK,
    conform,
    empty_file_table,
)
from vip2clip.results.store import CommitInfo, ResultsStore

__all__ = [
    "FILE_SCHEMA",
    "IDENTITY_COLUMNS",
    "MASK_QUANTISATION_ERROR",
    "PARTITION_COLUMNS",
    "PARTITION_SCHEMA",
    "RESULTS_SCHEMA",
    "SCHEMA_VERSION",
    "STATUS_ERROR",
    "STATUS_OK",
    "CommitInfo",
    "CommittedFile",
    "Manifest",
    "RegionStats",
    "ResultsStore",
    "check_run_date",
    "check_run_id",
    "conform",
    "decode_mask",
    "empty_file_table",
    "encode_mask",
    "region_stats",
]
