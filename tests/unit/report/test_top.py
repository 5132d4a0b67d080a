"""Top-N rows across data files and row groups, reading only the winners' masks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.unit.query.builders import Row, commit_run, results_catalog
from vip2clip.report.top import MASK_COLUMN, top_rows
from vip2clip.results import MASK_QUANTISATION_ERROR, ResultsTable, decode_mask

SCORES = [0.31, 0.92, 0.05, 0.77, 0.92, 0.5, 0.64, 0.18, 0.88, 0.41, 0.7, 0.12]
OTHER_RUN_SCORE = 0.99  # another run, same night: never a winner of "run"
ROW_GROUP_ROWS = "2"  # pyiceberg writer property: many row groups from a few rows


@pytest.fixture
def results(tmp_path: Path) -> Iterator[ResultsTable]:
    with results_catalog(tmp_path) as results:
        with results.table.transaction() as txn:
            txn.set_properties({"write.parquet.row-group-limit": ROW_GROUP_ROWS})
        rows = [Row(f"img-{i:02d}.png", s) for i, s in enumerate(SCORES)]
        rows.append(Row("broken.png", error_reason="not_an_image"))
        commit_run(results, "run", "2026-11-25", rows, files=2)
        commit_run(results, "other", "2026-11-25", [Row("img-99.png", OTHER_RUN_SCORE)])
        yield results


def test_best_rows_in_order_with_their_own_masks(results: ResultsTable) -> None:
    got = top_rows(results, "run", 4)
    expected = sorted(range(len(SCORES)), key=lambda i: (-SCORES[i], f"img-{i:02d}.png"))[:4]
    assert [r["source_uri"] for r in got] == [f"img-{i:02d}.png" for i in expected]
    for row in got:
        # each builder map peaks at its row's score: the mask must be that row's own
        peak = float(decode_mask(row[MASK_COLUMN]).max())
        assert peak == pytest.approx(row["max_pixel_score"], abs=MASK_QUANTISATION_ERROR)
        assert peak == pytest.approx(row["image_score"], abs=0.02)


def test_reads_masks_of_the_winners_row_groups_only(
    results: ResultsTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    mask_reads: list[int] = []
    groups = 0
    original = pq.ParquetFile.read_row_group

    def spy(self: pq.ParquetFile, i: int, columns: Any = None, **kwargs: Any) -> Any:
        nonlocal groups
        if columns and MASK_COLUMN in columns:
            mask_reads.append(i)
        else:
            groups += 1
        return original(self, i, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    got = top_rows(results, "run", 2)
    assert [r["image_score"] for r in got] == [0.92, 0.92]  # tie: by source URI
    assert groups == 4 + 3  # 7 + 6 rows in 2-row groups: the run's files, not "other"
    assert len(mask_reads) <= 2


def test_time_travel_and_nothing_requested_or_scored(tmp_path: Path) -> None:
    with results_catalog(tmp_path) as results:
        first = commit_run(results, "errors", "2026-11-25", [Row("x.png", error_reason="bad")])
        commit_run(results, "errors", "2026-11-25", [Row("y.png", 0.8)])
        assert top_rows(results, "errors", 5, first) == []
        assert [r["source_uri"] for r in top_rows(results, "errors", 5)] == ["y.png"]
        assert top_rows(results, "errors", 0) == []
