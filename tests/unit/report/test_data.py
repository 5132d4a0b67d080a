"""What the report shows, as queried from the committed rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.query.builders import (
    CRAFTED_KEY,
    NIGHT_1,
    NIGHT_2,
    SCORES_1,
    SCORES_2,
    Row,
    commit_run,
)
from tests.unit.report.helpers import report_table
from vip2clip.errors import StorageError
from vip2clip.report.data import HISTOGRAM_BINS, REDACTED, gather, redact


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    return report_table(tmp_path_factory.mktemp("report-data"))[0]


def test_latest_run_by_default(table: str) -> None:
    data = gather(table, top=3)
    assert data.manifest.run_id == NIGHT_2[0]
    assert [a.image_score for a in data.top] == sorted(SCORES_2, reverse=True)[:3]
    assert [a.rank for a in data.top] == [1, 2, 3]


def test_counts_and_histogram(table: str) -> None:
    data = gather(table, NIGHT_1[0])
    counts = data.counts
    assert (counts.total, counts.ok, counts.errors) == (len(SCORES_1) + 1, len(SCORES_1), 1)
    assert counts.anomalous == sum(s >= 0.5 for s in SCORES_1)
    assert counts.image_thresholds == (0.5,) and counts.model_ids == ("model-a",)
    assert len(data.histogram) == HISTOGRAM_BINS and sum(data.histogram) == len(SCORES_1)
    for score in SCORES_1:
        assert data.histogram[min(int(score * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] >= 1


def test_top_rows_carry_masks_and_regions(table: str) -> None:
    best = gather(table, NIGHT_2[0], top=1).top[0]
    assert best.mask_png and best.mask_png.startswith(b"\x89PNG")
    assert best.image_size == Row("").size
    assert best.bbox is not None and best.bbox[0] < best.bbox[2] and best.bbox[1] < best.bbox[3]


def test_errors_by_reason_and_bounded_list(table: str) -> None:
    data = gather(table, NIGHT_2[0], max_errors=1)
    assert data.error_counts == (("not_an_image", 1), ("object_missing", 1))
    assert len(data.errors) == 1 and data.errors_not_listed == 1
    assert data.errors[0].source_uri.endswith(CRAFTED_KEY)


def test_unknown_run_is_a_storage_error(table: str, tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="'nope' has no committed results"):
        gather(table, "nope")
    with pytest.raises(StorageError, match="no committed runs"):
        gather(str(tmp_path))


def test_summary_is_redacted(tmp_path: Path) -> None:
    summary = {
        "output": "s3://key:secret@bucket/results",
        "ray_auth_token": "abc",
        "nested": {"aws_secret_access_key": "zzz", "reasons": ["http://u:p@h/x"]},
        "ok": 3,
    }
    commit_run(str(tmp_path), "r", "2026-11-25", [Row("a", 0.1)], summary=summary)
    assert gather(str(tmp_path)).summary == {
        "output": "s3://***@bucket/results",
        "ray_auth_token": REDACTED,
        "nested": {"aws_secret_access_key": REDACTED, "reasons": ["http://***@h/x"]},
        "ok": 3,
    }
    assert redact(["x", 1, None]) == ["x", 1, None]
