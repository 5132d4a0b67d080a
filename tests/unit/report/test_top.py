"""Top-N rows across files and row groups, reading only the winners' masks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from tests.unit.query.builders import Row, commit_run
from vip2clip.report.top import MASK_COLUMN, top_rows
from vip2clip.results import MASK_QUANTISATION_ERROR, ResultsStore, decode_mask

SCORES = [0.31, 0.92, 0.05, 0.77, 0.92, 0.5, 0.64, 0.18, 0.88, 0.41, 0.7, 0.12]


@pytest.fixture
def store(tmp_path: Path) -> ResultsStore:
    rows = [Row(f"img-{i:02d}.png", s) for i, s in enumerate(SCORES)]
    rows.append(Row("broken.png", error_reason="not_an_image"))
    commit_run(str(tmp_path), "run", "2026-11-25", rows, files=2, row_group_size=2)
    return ResultsStore(str(tmp_path))


def test_best_rows_in_order_with_their_own_masks(store: ResultsStore) -> None:
    got = top_rows(store, "run", 4)
    expected = sorted(range(len(SCORES)), key=lambda i: (-SCORES[i], f"img-{i:02d}.png"))[:4]
    assert [r["source_uri"] for r in got] == [f"img-{i:02d}.png" for i in expected]
    for row in got:
        # each builder map peaks at its row's score: the mask must be that row's own
        peak = float(decode_mask(row[MASK_COLUMN]).max())
        assert peak == pytest.approx(row["max_pixel_score"], abs=MASK_QUANTISATION_ERROR)
        assert peak == pytest.approx(row["image_score"], abs=0.02)


def test_reads_masks_of_the_winners_row_groups_only(
    store: ResultsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    mask_reads: list[int] = []
    original = pq.ParquetFile.read_row_group

    def spy(self: pq.ParquetFile, i: int, columns: Any = None, **kwargs: Any) -> Any:
        if columns and MASK_COLUMN in columns:
            mask_reads.append(i)
        return original(self, i, columns=columns, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    got = top_rows(store, "run", 2)
    assert [r["image_score"] for r in got] == [0.92, 0.92]  # tie: by source URI
    assert len(mask_reads) <= 2  # of 7 row groups in 2 files


def test_nothing_requested_or_nothing_scored(tmp_path: Path) -> None:
    commit_run(str(tmp_path), "errors", "2026-11-25", [Row("x.png", error_reason="corrupt_image")])
    store = ResultsStore(str(tmp_path))
    assert top_rows(store, "errors", 5) == []
    assert top_rows(store, "errors", 0) == []
