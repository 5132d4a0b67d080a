"""Render query rows as a plain-text table for a terminal.

Cells are made safe for a terminal: control characters (including ANSI escape
sequences an object key could carry) are shown as ``\\xNN``, and invisible format
characters (right-to-left override U+202E, zero-width U+200B, line separators ...) as
``\\uNNNN``, instead of being sent to the screen; binary values (``mask_png``) are
elided to their size, and long values are shortened.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

DEFAULT_MAX_ROWS = 50
MAX_CELL_CHARS = 60
ELLIPSIS = "…"
NULL_TEXT = "NULL"
FLOAT_DIGITS = 6  # significant digits of floats
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Unicode categories a terminal renders invisibly or that reorder/break the table:
# format (Cf: bidi overrides, zero-width), line/paragraph separators, surrogates, private use.
_HIDDEN_CATEGORIES = frozenset({"Cf", "Zl", "Zp", "Cs", "Co"})
_COLUMN_GAP = "  "


@dataclass(frozen=True)
class Preview:
    """The first rows of a result and whether more exist."""

    schema: pa.Schema
    rows: list[dict[str, Any]]
    truncated: bool


def take_preview(rows: pa.RecordBatchReader, max_rows: int = DEFAULT_MAX_ROWS) -> Preview:
    """Read at most ``max_rows`` rows (plus one, to know whether more exist)."""
    kept: list[dict[str, Any]] = []
    for batch in rows:
        kept.extend(batch.slice(0, max_rows + 1 - len(kept)).to_pylist())
        if len(kept) > max_rows:
            return Preview(rows.schema, kept[:max_rows], truncated=True)
    return Preview(rows.schema, kept, truncated=False)


def render_preview(preview: Preview) -> str:
    """A left-aligned text table with a header and a footer line counting the rows."""
    names = preview.schema.names
    cells = [[format_cell(row[name]) for name in names] for row in preview.rows]
    header = [format_cell(name) for name in names]
    lines = _aligned([header, ["-" * len(h) for h in header], *cells])
    count = len(preview.rows)
    footer = f"{count} row{'' if count == 1 else 's'}"
    if preview.truncated:
        footer = f"first {footer} shown; more exist (raise --limit, or write them with --output)"
    return "\n".join([*lines, footer]) + "\n"


def format_cell(value: Any) -> str:
    """One value as terminal-safe text of at most :data:`MAX_CELL_CHARS` characters."""
    if value is None:
        return NULL_TEXT
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(value)} bytes>"
    if isinstance(value, float):
        text = (
            repr(value) if math.isnan(value) or math.isinf(value) else f"{value:.{FLOAT_DIGITS}g}"
        )
    elif isinstance(value, dt.datetime):
        text = value.isoformat(sep=" ")
    else:
        text = str(value)
    text = _visible(_CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text))
    if len(text) > MAX_CELL_CHARS:
        text = text[: MAX_CELL_CHARS - 1] + ELLIPSIS
    return text


def _visible(text: str) -> str:
    r"""``text`` with every invisible or reordering character written as an escape.

    >>> _visible("evil\u202egnp.exe")
    'evil\\u202egnp.exe'
    """
    if text.isascii():
        return text
    return "".join(
        _escape(char) if unicodedata.category(char) in _HIDDEN_CATEGORIES else char for char in text
    )


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _aligned(rows: Sequence[Sequence[str]]) -> Iterable[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))] if rows[0] else []
    for row in rows:
        yield _COLUMN_GAP.join(
            cell.ljust(width) for cell, width in zip(row, widths, strict=True)
        ).rstrip()
