"""Render an :class:`~vip2clip.eval.report.EvaluationReport` as Markdown and JSON.

The Markdown table follows the paper: one row per class and the mean, percentages with one
decimal, undefined values shown as ``n/a`` and explained below the table. The JSON keeps the raw
fractions (``null`` where undefined) plus thresholds and how the pixel metrics were computed.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from typing import Any

from vip2clip.eval.report import ClassMetrics, EvaluationReport
from vip2clip.storage import StorageConfig, join, write_bytes

JSON_SCHEMA_VERSION = 1
MARKDOWN_NAME = "metrics.md"
JSON_NAME = "metrics.json"
PERCENT = 100.0
UNDEFINED = "n/a"

# (column title, ClassMetrics attribute) in paper order, then pixel AP as an extra.
TABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Image AUROC", "image_auroc"),
    ("Image AP", "image_ap"),
    ("Image F1-max", "image_f1_max"),
    ("Pixel AUROC", "pixel_auroc"),
    ("Pixel AUPRO", "pixel_aupro"),
    ("Pixel F1-max", "pixel_f1_max"),
    ("Pixel AP", "pixel_ap"),
)


def render_markdown(report: EvaluationReport) -> str:
    """The paper-style table, thresholds and notes as a Markdown document."""
    header = ["Class", "Images", "Anomalous", *(title for title, _ in TABLE_COLUMNS)]
    lines = [_md_row(header), _md_row(["---"] + ["---:"] * (len(header) - 1))]
    lines += [_md_row(_cells(row)) for row in report.rows]
    lines.append(_md_row([f"**{c}**" for c in _cells(report.mean)]))
    t = report.thresholds
    lines += [
        "",
        f"F1-max thresholds over all classes: image {_number(t.image)} (F1 {_percent(t.image_f1)}),"
        f" pixel {_number(t.pixel)} (F1 {_percent(t.pixel_f1)}).",
        f"AUPRO: {report.aupro_method} method; pixel metrics from {report.histogram_bins}-bin"
        f" histograms (pixel AUROC within ±{_number(report.pixel_auroc_error_bound, 2)}).",
    ]
    lines += [f"- {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def report_to_json(report: EvaluationReport) -> dict[str, Any]:
    """A JSON-serialisable dict (NaN → ``None``)."""
    return _finite(
        {
            "schema_version": JSON_SCHEMA_VERSION,
            "classes": [asdict(row) for row in report.rows],
            "mean": asdict(report.mean),
            "thresholds": asdict(report.thresholds),
            "aupro_method": report.aupro_method,
            "histogram_bins": report.histogram_bins,
            "pixel_auroc_error_bound": report.pixel_auroc_error_bound,
            "notes": list(report.notes),
        }
    )


def write_report(
    report: EvaluationReport, output_uri: str, storage: StorageConfig | None = None
) -> tuple[str, str]:
    """Write ``metrics.md`` and ``metrics.json`` under ``output_uri``; return their URIs."""
    md_uri, json_uri = join(output_uri, MARKDOWN_NAME), join(output_uri, JSON_NAME)
    write_bytes(md_uri, render_markdown(report).encode(), storage)
    text = json.dumps(report_to_json(report), indent=2, allow_nan=False)
    write_bytes(json_uri, text.encode(), storage)
    return md_uri, json_uri


def _cells(row: ClassMetrics) -> list[str]:
    values = [_percent(getattr(row, attr)) for _, attr in TABLE_COLUMNS]
    return [row.class_name, str(row.n_images), str(row.n_anomalous), *values]


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _percent(value: float) -> str:
    return UNDEFINED if math.isnan(value) else f"{value * PERCENT:.1f}"


def _number(value: float, digits: int = 4) -> str:
    return UNDEFINED if math.isnan(value) else f"{value:.{digits}g}"


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
