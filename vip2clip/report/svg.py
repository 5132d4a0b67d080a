"""An inline SVG bar chart of image-score counts (no scripts, no external resources)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH = 640
HEIGHT = 240
MARGIN_LEFT = 48
MARGIN_RIGHT = 12
MARGIN_TOP = 12
MARGIN_BOTTOM = 36
TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)  # x-axis labels over the score range [0, 1]
BAR_GAP = 1  # pixels between bars
BAR_COLOUR = "#4a78b5"
THRESHOLD_COLOUR = "#d0342c"


def histogram_svg(
    counts: Sequence[int], threshold: float | None = None, label: str = "image score"
) -> str:
    """Bars of ``counts`` over equal bins of ``[0, 1]``, with an optional threshold line."""
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    peak = max(counts, default=0) or 1
    bin_w = plot_w / max(len(counts), 1)
    base_y = MARGIN_TOP + plot_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(label)} histogram">',
        f'<line x1="{MARGIN_LEFT}" y1="{base_y}" x2="{WIDTH - MARGIN_RIGHT}" y2="{base_y}" '
        'stroke="#333"/>',
    ]
    for i, count in enumerate(counts):
        bar_h = plot_h * count / peak
        x = MARGIN_LEFT + i * bin_w
        lo, hi = i / len(counts), (i + 1) / len(counts)
        parts.append(
            f'<rect x="{x:.1f}" y="{base_y - bar_h:.1f}" width="{max(bin_w - BAR_GAP, 1):.1f}" '
            f'height="{bar_h:.1f}" fill="{BAR_COLOUR}"><title>{lo:.2f}–{hi:.2f}: {count}'
            "</title></rect>"
        )
    for tick in TICKS:
        x = MARGIN_LEFT + tick * plot_w
        parts.append(
            f'<text x="{x:.1f}" y="{base_y + 16}" text-anchor="middle" font-size="11">'
            f"{tick:g}</text>"
        )
    parts.append(
        f'<text x="{MARGIN_LEFT - 6}" y="{MARGIN_TOP + 10}" text-anchor="end" font-size="11">'
        f"{peak if any(counts) else 0}</text>"
        f'<text x="{MARGIN_LEFT - 6}" y="{base_y}" text-anchor="end" font-size="11">0</text>'
        f'<text x="{MARGIN_LEFT + plot_w / 2:.1f}" y="{HEIGHT - 4}" text-anchor="middle" '
        f'font-size="12">{escape(label)}</text>'
    )
    if threshold is not None and 0.0 <= threshold <= 1.0:
        x = MARGIN_LEFT + threshold * plot_w
        parts.append(
            f'<line x1="{x:.1f}" y1="{MARGIN_TOP}" x2="{x:.1f}" y2="{base_y}" '
            f'stroke="{THRESHOLD_COLOUR}" stroke-dasharray="4 3" stroke-width="2">'
            f"<title>threshold {threshold:.4g}</title></line>"
        )
    parts.append("</svg>")
    return "".join(parts)
