"""The inline SVG histogram."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from vip2clip.report.svg import HEIGHT, MARGIN_BOTTOM, MARGIN_LEFT, MARGIN_TOP, WIDTH, histogram_svg

SVG = "{http://www.w3.org/2000/svg}"


def _rects(svg: str) -> list[ET.Element]:
    return ET.fromstring(svg).findall(f"{SVG}rect")


def test_bars_are_proportional_to_counts() -> None:
    rects = _rects(histogram_svg([0, 5, 10, 0]))
    heights = [float(r.attrib["height"]) for r in rects]
    plot_height = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    assert heights == [0.0, plot_height / 2, plot_height, 0.0]


def test_threshold_line_sits_at_its_score() -> None:
    root = ET.fromstring(histogram_svg([1, 2], threshold=0.25))
    dashed = [line for line in root.findall(f"{SVG}line") if "stroke-dasharray" in line.attrib]
    plot_width = WIDTH - MARGIN_LEFT - 12
    assert len(dashed) == 1
    assert float(dashed[0].attrib["x1"]) == round(MARGIN_LEFT + 0.25 * plot_width, 1)


def test_no_threshold_line_when_none_or_out_of_range() -> None:
    for threshold in (None, 1.5):
        assert "stroke-dasharray" not in histogram_svg([1], threshold=threshold)


def test_empty_histogram_and_escaped_label() -> None:
    svg = histogram_svg([0, 0], label="<b>&")
    assert "<b>" not in svg and "&lt;b&gt;&amp;" in svg
    assert len(_rects(svg)) == 2
    assert not re.search(r"nan|inf", svg)
