"""Query output: CSV (base64 masks) and Parquet, written batch by batch."""

from __future__ import annotations

import base64
import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vip2clip.errors import ConfigError
from vip2clip.query import OutputFormat, format_for, write_rows
from vip2clip.results import decode_mask, encode_mask


def _rows() -> pa.RecordBatchReader:
    masks = [encode_mask(np.full((4, 4), v)) for v in (0.25, 0.75)]
    batches = [
        pa.record_batch({"uri": ["a", "b"], "score": [0.5, None], "mask_png": [masks[0], None]}),
        pa.record_batch({"uri": ["c", "d"], "score": [0.1, 0.2], "mask_png": [masks[1], None]}),
    ]
    return pa.RecordBatchReader.from_batches(batches[0].schema, batches)


@pytest.mark.parametrize(
    ("uri", "explicit", "expected"),
    [
        ("out.csv", None, OutputFormat.CSV),
        ("s3://b/x/out.PARQUET", None, OutputFormat.PARQUET),
        ("out.pq", None, OutputFormat.PARQUET),
        ("out.txt", "csv", OutputFormat.CSV),
    ],
)
def test_format_for(uri: str, explicit: str | None, expected: OutputFormat) -> None:
    assert format_for(uri, explicit) is expected


def test_format_for_unknown_suffix_says_what_to_do() -> None:
    with pytest.raises(ConfigError, match=r"\.csv or \.parquet"):
        format_for("out.txt")


def test_parquet_keeps_every_value(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "out.parquet"
    assert write_rows(_rows(), str(target), OutputFormat.PARQUET) == 4
    assert pq.read_table(target) == _rows().read_all()


def test_csv_writes_masks_base64(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    assert write_rows(_rows(), str(target), "csv") == 4
    with target.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["uri"] for r in rows] == ["a", "b", "c", "d"]
    assert rows[1]["score"] == "" and rows[1]["mask_png"] == ""
    restored = decode_mask(base64.b64decode(rows[2]["mask_png"]))
    np.testing.assert_allclose(restored, 0.75, atol=1 / 255)
