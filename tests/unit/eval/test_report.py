"""Per-class accumulation, mean row, pooled thresholds, Markdown/JSON rendering."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vip2clip.eval.aupro import aupro
from vip2clip.eval.metrics import auroc, average_precision, f1_max
from vip2clip.eval.report import EvaluationAccumulator
from vip2clip.eval.table import MARKDOWN_NAME, render_markdown, report_to_json, write_report

BINS = 2**10
SIZE = 16


def _class_batch(rng: np.random.Generator, n: int, n_bad: int) -> tuple[np.ndarray, ...]:
    labels = np.array([1] * n_bad + [0] * (n - n_bad))
    masks = np.zeros((n, SIZE, SIZE), dtype=np.uint8)
    for i in range(n_bad):
        y, x = rng.integers(0, SIZE - 4, size=2)
        masks[i, y : y + 4, x : x + 3] = 1
    # scores on the histogram grid so the streaming pixel metrics are exact here
    maps = np.floor(np.clip(rng.normal(0.4 + 0.3 * masks, 0.1), 0, 1) * BINS) / BINS
    scores = rng.normal(labels * 0.5, 0.4)
    return labels, scores, maps, masks


def _accumulate_two_classes() -> tuple[EvaluationAccumulator, dict[str, tuple[np.ndarray, ...]]]:
    rng = np.random.default_rng(0)
    data = {"bottle": _class_batch(rng, 10, 6), "cable": _class_batch(rng, 8, 3)}
    acc = EvaluationAccumulator(bins=BINS)
    # interleave the two classes in mixed batches
    for start in range(0, 10, 4):
        names, parts = [], []
        for name, arrays in data.items():
            chunk = [a[start : start + 4] for a in arrays]
            names += [name] * len(chunk[0])
            parts.append(chunk)
        labels, scores, maps, masks = (np.concatenate(x) for x in zip(*parts, strict=True))
        acc.add(names, labels, scores, maps, masks)
    return acc, data


def test_per_class_rows_match_exact_metrics() -> None:
    acc, data = _accumulate_two_classes()
    report = acc.report()
    assert [r.class_name for r in report.rows] == ["bottle", "cable"]
    for row in report.rows:
        labels, scores, maps, masks = data[row.class_name]
        assert row.n_images == labels.size and row.n_anomalous == labels.sum()
        assert row.image_auroc == pytest.approx(auroc(labels, scores), abs=1e-9)
        assert row.image_ap == pytest.approx(average_precision(labels, scores), abs=1e-9)
        assert row.image_f1_max == pytest.approx(f1_max(labels, scores).f1, abs=1e-9)
        assert row.pixel_auroc == pytest.approx(auroc(masks, maps), abs=1e-9)
        assert row.pixel_ap == pytest.approx(average_precision(masks, maps), abs=1e-9)
        assert row.pixel_f1_max == pytest.approx(f1_max(masks, maps).f1, abs=1e-9)
        assert row.pixel_aupro == pytest.approx(aupro(masks, maps), abs=1e-9)
    assert report.mean.image_auroc == pytest.approx(np.mean([r.image_auroc for r in report.rows]))
    assert report.mean.n_images == 18


def test_pooled_thresholds_over_all_classes() -> None:
    acc, data = _accumulate_two_classes()
    thresholds = acc.report().thresholds
    labels = np.concatenate([d[0] for d in data.values()])
    scores = np.concatenate([d[1] for d in data.values()])
    expected = f1_max(labels, scores)
    assert thresholds.image == pytest.approx(expected.threshold)
    assert thresholds.image_f1 == pytest.approx(expected.f1)
    maps = np.concatenate([d[2] for d in data.values()])
    masks = np.concatenate([d[3] for d in data.values()])
    assert thresholds.pixel == pytest.approx(f1_max(masks, maps).threshold)


def test_all_normal_class_is_nan_and_explained() -> None:
    acc, _ = _accumulate_two_classes()
    acc.add(
        ["screw"] * 3,
        [0, 0, 0],
        [0.1, 0.2, 0.3],
        np.full((3, SIZE, SIZE), 0.2),
        np.zeros((3, SIZE, SIZE)),
    )
    report = acc.report()
    screw = next(r for r in report.rows if r.class_name == "screw")
    assert math.isnan(screw.image_auroc) and math.isnan(screw.pixel_aupro)
    defined = [r.image_auroc for r in report.rows if r.class_name != "screw"]
    assert report.mean.image_auroc == pytest.approx(np.mean(defined))
    assert any("screw" in n and "no anomalous image" in n for n in report.notes)
    markdown = render_markdown(report)
    assert "| screw | 3 | 0 | n/a |" in markdown
    assert "averages the defined values only" in markdown
    as_json = report_to_json(report)
    assert as_json["classes"][2]["image_auroc"] is None
    json.dumps(as_json, allow_nan=False)  # strict JSON


def test_markdown_table_layout() -> None:
    acc, _ = _accumulate_two_classes()
    report = acc.report()
    lines = render_markdown(report).splitlines()
    assert lines[0].startswith("| Class | Images | Anomalous | Image AUROC | Image AP |")
    assert lines[3].startswith("| cable | 8 | 3 | ")
    assert lines[4].startswith("| **mean** | **18** | **9** | ")
    auroc_cell = lines[2].split("|")[4].strip()
    assert auroc_cell == f"{report.rows[0].image_auroc * 100:.1f}"


def test_write_report_round_trips(tmp_path: Path) -> None:
    acc, _ = _accumulate_two_classes()
    report = acc.report()
    md_uri, json_uri = write_report(report, str(tmp_path / "out"))
    assert Path(md_uri).name == MARKDOWN_NAME
    assert Path(md_uri).read_text() == render_markdown(report)
    loaded = json.loads(Path(json_uri).read_text())
    assert loaded["mean"]["image_auroc"] == pytest.approx(report.mean.image_auroc)
    assert loaded["thresholds"]["pixel"] == pytest.approx(report.thresholds.pixel)


def test_image_only_and_input_checks() -> None:
    acc = EvaluationAccumulator(bins=BINS, pixel_metrics=False)
    acc.add(["a", "a", "a"], [0, 1, 1], [0.1, 0.8, 0.7])
    report = acc.report()
    assert report.rows[0].image_auroc == 1.0
    assert math.isnan(report.rows[0].pixel_auroc) and math.isnan(report.thresholds.pixel)
    with pytest.raises(ValueError, match="one entry per image"):
        acc.add(["a"], [0, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="need maps and masks"):
        EvaluationAccumulator().add(["a"], [0], [0.1])
    with pytest.raises(ValueError, match="no scored images"):
        EvaluationAccumulator().report()
