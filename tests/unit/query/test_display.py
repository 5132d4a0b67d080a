"""Terminal tables: first rows only, binary elided, control characters neutralised."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pytest

from vip2clip.query.display import (
    MAX_CELL_CHARS,
    NULL_TEXT,
    format_cell,
    render_preview,
    take_preview,
)


def _reader(n_batches: int, rows_per_batch: int) -> pa.RecordBatchReader:
    batches = [
        pa.record_batch({"i": list(range(b * rows_per_batch, (b + 1) * rows_per_batch))})
        for b in range(n_batches)
    ]
    return pa.RecordBatchReader.from_batches(batches[0].schema, batches)


def test_preview_stops_at_the_limit_across_batches() -> None:
    preview = take_preview(_reader(3, 4), max_rows=6)
    assert [r["i"] for r in preview.rows] == list(range(6))
    assert preview.truncated
    assert "first 6 rows shown; more exist" in render_preview(preview)


def test_preview_of_exactly_the_limit_is_not_truncated() -> None:
    preview = take_preview(_reader(2, 3), max_rows=6)
    assert len(preview.rows) == 6 and not preview.truncated
    assert render_preview(preview).endswith("6 rows\n")


def test_render_aligns_columns() -> None:
    table = pa.table({"name": ["a", "longer"], "n": [1, 22]})
    lines = render_preview(take_preview(table.to_reader())).splitlines()
    assert lines[0] == "name    n"
    assert lines[2] == "a       1"
    assert lines[3] == "longer  22"
    assert lines[4] == "2 rows"


def test_cells() -> None:
    assert format_cell(None) == NULL_TEXT
    assert format_cell(b"\x89PNG" * 100) == "<400 bytes>"
    assert format_cell(0.123456789) == "0.123457"
    assert format_cell(dt.datetime(2026, 11, 25, 2, 0)) == "2026-11-25 02:00:00"
    assert format_cell("\x1b[2Jcleared\nline") == "\\x1b[2Jcleared\\x0aline"
    long = format_cell("x" * 500)
    assert len(long) == MAX_CELL_CHARS and long.endswith("…")


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("invoice\u202efdp.exe", "invoice\\u202efdp.exe"),  # right-to-left override
        ("a\u200bb\u200dc\ufeffd", "a\\u200bb\\u200dc\\ufeffd"),  # zero-width, BOM
        ("x\u2066y\u2069z", "x\\u2066y\\u2069z"),  # bidi isolates
        ("line\u2028para\u2029", "line\\u2028para\\u2029"),  # separators
        ("tag\U000e0041", "tag\\U000e0041"),  # tag characters (outside the BMP)
        ("café 東京 ✓", "café 東京 ✓"),  # visible text is kept as it is
    ],
)
def test_invisible_and_reordering_characters_are_escaped(raw: str, shown: str) -> None:
    assert format_cell(raw) == shown
    table = pa.table({raw: [raw]})
    rendered = render_preview(take_preview(table.to_reader()))
    assert shown in rendered and (raw == shown or raw not in rendered)
