"""``vip2clip synth``: datasets in every layout, archives with ground truth, user errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from vip2clip.cli.main import main
from vip2clip.data.datasets import DatasetSpec, list_samples


@pytest.mark.parametrize("layout", ["mvtec", "visa"])
def test_synth_writes_a_readable_dataset(
    tmp_path: Path, layout: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / layout
    code = main(
        [
            "synth",
            str(out),
            "--layout",
            layout,
            "--domains",
            "tiles,wood",
            "--count",
            "2",
            "--test-bad",
            "3",
            "--size",
            "48",
            "--seed",
            "9",
        ]
    )
    assert code == 0
    assert f"to {out}" in capsys.readouterr().out
    samples = list_samples(DatasetSpec(uri=str(out), format=layout))  # type: ignore[arg-type]
    assert sorted({s.class_name for s in samples}) == ["tiles", "wood"]
    assert sum(s.label for s in samples) == 2 * 3 and len(samples) == 2 * (2 + 3)


def test_synth_archive_with_truth(tmp_path: Path) -> None:
    truth = tmp_path / "truth.csv"
    code = main(
        [
            "synth",
            str(tmp_path / "night"),
            "--layout",
            "archive",
            "--count",
            "12",
            "--size",
            "48",
            "--defect-rate",
            "1.0",
            "--truth",
            str(truth),
        ]
    )
    assert code == 0
    rows = list(csv.DictReader(truth.open()))
    assert len(rows) == 12 == len(list((tmp_path / "night").iterdir()))
    assert all(row["defect"] and Path(row["uri"]).is_file() for row in rows)


def test_synth_user_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["synth", str(tmp_path), "--domains", "wood,lava"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("vip2clip: error: unknown domain lava") and err.count("\n") == 1
    assert main(["synth", str(tmp_path), "--size", "8"]) != 0
