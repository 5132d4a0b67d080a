"""What the report shows, as queried from a run's rows and its snapshot summary."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.query.builders import (
    CRAFTED_KEY,
    NIGHT_1,
    NIGHT_2,
    SCORES_1,
    SCORES_2,
    Row,
    TwoNights,
    commit_run,
    results_catalog,
)
from tests.unit.report.helpers import report_table
from vip2clip.errors import StorageError
from vip2clip.report.data import HISTOGRAM_BINS, REDACTED, gather, redact
from vip2clip.results import ResultsTable, RunState
from vip2clip.results import table as results_table


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ResultsTable, TwoNights]]:
    root = tmp_path_factory.mktemp("report-data")
    with results_catalog(root) as results:
        yield results, report_table(results, root)


@pytest.fixture
def results(table: tuple[ResultsTable, TwoNights]) -> ResultsTable:
    return table[0]


def test_latest_run_by_default(table: tuple[ResultsTable, TwoNights]) -> None:
    results, snapshots = table
    data = gather(results, top=3)
    assert data.run.run_id == NIGHT_2[0]
    assert data.run.run_date == dt.date.fromisoformat(NIGHT_2[1])
    assert (data.run.model_id, data.run.state) == ("model-a", RunState.COMPLETE)
    assert data.run.snapshot_id == snapshots.night_2
    assert [a.image_score for a in data.top] == sorted(SCORES_2, reverse=True)[:3]
    assert [a.rank for a in data.top] == [1, 2, 3]


def test_counts_and_histogram_of_an_older_run(results: ResultsTable) -> None:
    data = gather(results, NIGHT_1[0])
    counts = data.counts
    assert (counts.total, counts.ok, counts.errors) == (len(SCORES_1) + 1, len(SCORES_1), 1)
    assert counts.anomalous == sum(s >= 0.5 for s in SCORES_1)
    assert counts.image_thresholds == (0.5,) and counts.model_ids == ("model-a",)
    assert len(data.histogram) == HISTOGRAM_BINS and sum(data.histogram) == len(SCORES_1)
    for score in SCORES_1:
        assert data.histogram[min(int(score * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] >= 1
    assert [a.image_score for a in gather(results, NIGHT_1[0], top=2).top] == [0.9, 0.7]


def test_top_rows_carry_masks_and_regions(results: ResultsTable) -> None:
    best = gather(results, NIGHT_2[0], top=1).top[0]
    assert best.mask_png and best.mask_png.startswith(b"\x89PNG")
    assert best.image_size == Row("").size
    assert best.bbox is not None and best.bbox[0] < best.bbox[2] and best.bbox[1] < best.bbox[3]


def test_errors_by_reason_and_bounded_list(results: ResultsTable) -> None:
    data = gather(results, NIGHT_2[0], max_errors=1)
    assert data.error_counts == (("not_an_image", 1), ("object_missing", 1))
    assert len(data.errors) == 1 and data.errors_not_listed == 1
    assert data.errors[0].source_uri.endswith(CRAFTED_KEY)


def test_the_summary_is_the_runs_snapshot_summary(results: ResultsTable) -> None:
    summary = gather(results, NIGHT_1[0]).summary
    assert summary[results_table.RUN_ID] == NIGHT_1[0]
    assert summary[results_table.RUN_COMPLETE] == "true"
    assert summary["added-records"] == str(len(SCORES_1) + 1)


def test_unknown_run_and_empty_table_are_storage_errors(tmp_path: Path) -> None:
    with results_catalog(tmp_path) as results:
        with pytest.raises(StorageError, match="no run in its snapshot history"):
            gather(results)
        commit_run(results, "r1", "2026-11-25", [Row("a.png", 0.5)])
        with pytest.raises(StorageError, match="run 'nope' has no committed rows"):
            gather(results, "nope")


def test_summary_is_redacted(tmp_path: Path) -> None:
    summary = {
        "vip2clip.source": "s3://key:secret@bucket/archive",
        "vip2clip.ray-auth-token": "abc",
        "vip2clip.aws_secret_access_key": "zzz",
        "vip2clip.ok": "3",
    }
    with results_catalog(tmp_path) as results:
        commit_run(results, "r", "2026-11-25", [Row("a", 0.1)], summary=summary)
        got = gather(results).summary
    assert got["vip2clip.source"] == "s3://***@bucket/archive"
    assert got["vip2clip.ray-auth-token"] == REDACTED
    assert got["vip2clip.aws_secret_access_key"] == REDACTED
    assert got["vip2clip.ok"] == "3"
    assert redact({"nested": {"token": 1, "reasons": ["http://u:p@h/x"]}}) == {
        "nested": {"token": REDACTED, "reasons": ["http://***@h/x"]}
    }
    assert redact(["x", 1, None]) == ["x", 1, None]
