"""Render a run report as one self-contained HTML page.

Safety rules, relied on by the tests:

* every text that comes from data (object keys, error details, run metadata) goes
  through :func:`text`, which HTML-escapes it (quotes included) and masks
  ``user:password@`` parts of URIs;
* pictures are ``data:`` URIs; the page loads nothing from anywhere;
* a Content-Security-Policy forbids scripts and any network access, so even a
  missed escape could not run code or leak anything.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from vip2clip.report.data import Anomaly, ReportData
from vip2clip.report.images import Pictures
from vip2clip.report.svg import histogram_svg
from vip2clip.storage import redact_userinfo

CONTENT_SECURITY_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
SCORE_DIGITS = 4
# is_anomalous -> (CSS class, label)
_DECISIONS: dict[bool | None, tuple[str, str]] = {
    True: ("anomalous", "anomalous"),
    False: ("normal", "normal"),
    None: ("", "no decision"),
}
_STYLE = """
body{font-family:system-ui,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:1.5em}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #ddd;padding:4px 8px;
text-align:left;vertical-align:top}th{background:#eee}
.meta td:first-child{font-weight:600}
.grid{display:flex;flex-wrap:wrap;gap:16px}
.card{background:#fff;border:1px solid #ccc;border-radius:6px;padding:8px;width:540px}
.card img{width:256px;height:auto;margin-right:4px;border:1px solid #ddd}
.uri,.detail{font-family:monospace;font-size:.85em;word-break:break-all}
.anomalous{color:#b00;font-weight:600}.normal{color:#070}
.missing{color:#a60;font-size:.85em}
"""


def text(value: Any) -> str:
    """Data -> safe HTML text (escaped, credentials in URIs masked)."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return escape(f"{value:.{SCORE_DIGITS}g}")
    if isinstance(value, dt.datetime):
        return escape(value.isoformat(sep=" ", timespec="seconds"))
    if isinstance(value, dict | list | tuple):
        value = json.dumps(value, sort_keys=True, default=str)
    return escape(redact_userinfo(str(value)), quote=True)


def render(
    data: ReportData, pictures: Sequence[Pictures], generated_at: dt.datetime | None = None
) -> str:
    """The whole report page; ``pictures[i]`` belongs to ``data.top[i]``."""
    generated = generated_at or dt.datetime.now(dt.UTC)
    run = data.run
    sections = [
        f"<h1>vip2clip run report: {text(run.run_id)}</h1>",
        _section("Run", _metadata(data, generated)),
        _section("Image scores", _histogram(data)),
        _section(f"Top {len(data.top)} anomalies", _gallery(data.top, pictures)),
        _section(f"Errors ({data.counts.errors})", _errors(data)),
        _section("Run summary (from its latest snapshot)", _key_values(data.summary.items())),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CONTENT_SECURITY_POLICY}">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>vip2clip report {text(run.run_id)} ({text(run.run_date)})</title>"
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def _section(title: str, body: str) -> str:
    return f"<section><h2>{title}</h2>\n{body}\n</section>"


def _metadata(data: ReportData, generated: dt.datetime) -> str:
    run, counts = data.run, data.counts
    rows: list[tuple[str, Any]] = [
        ("table", data.table),
        ("run id", run.run_id),
        ("run date", run.run_date),
        ("run state", run.state.value),
        ("model id", run.model_id),
        ("read from snapshot", run.snapshot_id),
        ("last committed at", run.committed_at),
        ("rows", counts.total),
        ("ok", counts.ok),
        ("errors", counts.errors),
        ("anomalous (decision)", counts.anomalous),
        ("models", ", ".join(counts.model_ids)),
        ("image threshold", _values(counts.image_thresholds)),
        ("pixel threshold", _values(counts.pixel_thresholds)),
        ("scored between", f"{_when(counts.first_scored_at)} and {_when(counts.last_scored_at)}"),
        ("report generated", generated.isoformat(timespec="seconds")),
    ]
    return _key_values(rows, css="meta")


def _histogram(data: ReportData) -> str:
    thresholds = data.counts.image_thresholds
    threshold = thresholds[0] if len(thresholds) == 1 else None
    note = (
        f"<p>{data.counts.ok} scored images; dashed line: decision threshold.</p>"
        if threshold is not None
        else f"<p>{data.counts.ok} scored images.</p>"
    )
    return note + histogram_svg(data.histogram, threshold)


def _gallery(top: Sequence[Anomaly], pictures: Sequence[Pictures]) -> str:
    if not top:
        return "<p>No scored images in this run.</p>"
    cards = [_card(a, p) for a, p in zip(top, pictures, strict=True)]
    return '<div class="grid">' + "".join(cards) + "</div>"


def _card(anomaly: Anomaly, pictures: Pictures) -> str:
    decision = _DECISIONS.get(anomaly.is_anomalous, _DECISIONS[None])
    images = "".join(
        f'<img src="{uri}" alt="{alt}">'
        for uri, alt in ((pictures.overlay, "overlay"), (pictures.mask, "anomaly map"))
        if uri is not None
    )
    missing = (
        f'<p class="missing">source image not shown: {text(pictures.source_problem)}</p>'
        if pictures.source_problem
        else ""
    )
    facts = _key_values(
        [
            ("score", anomaly.image_score),
            ("max pixel score", anomaly.max_pixel_score),
            ("anomalous area", anomaly.anomalous_area_fraction),
            ("largest region (x0, y0, x1, y1)", anomaly.bbox),
            ("image size", "×".join(map(str, anomaly.image_size or ())) or None),
            ("model", anomaly.model_id),
        ]
    )
    return (
        f'<div class="card"><div><b>#{anomaly.rank}</b> '
        f'<span class="{decision[0]}">{decision[1]}</span></div>'
        f'<div class="uri">{text(anomaly.source_uri)}</div>'
        f"<div>{images}</div>{missing}{facts}</div>"
    )


def _errors(data: ReportData) -> str:
    if not data.counts.errors:
        return "<p>No errors.</p>"
    by_reason = _table(["reason", "count"], [(r, n) for r, n in data.error_counts])
    listed = _table(
        ["object", "reason", "detail"], [(e.source_uri, e.reason, e.detail) for e in data.errors]
    )
    more = (
        f"<p>{data.errors_not_listed} more errors not listed "
        "(query them with <code>vip2clip query</code>).</p>"
        if data.errors_not_listed
        else ""
    )
    return by_reason + listed + more


def _key_values(rows: Iterable[tuple[str, Any]], css: str = "") -> str:
    body = "".join(f"<tr><td>{text(k)}</td><td>{text(v)}</td></tr>" for k, v in rows)
    return f'<table class="{css}">{body}</table>' if css else f"<table>{body}</table>"


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    head = "".join(f"<th>{text(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="detail">{text(v)}</td>' for v in row) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _values(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.{SCORE_DIGITS}g}" for v in values) or "–"


def _when(moment: dt.datetime | None) -> str:
    return moment.isoformat(sep=" ", timespec="seconds") if moment else "–"
