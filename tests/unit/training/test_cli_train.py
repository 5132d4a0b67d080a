"""``vip2clip train`` argument handling (the run itself is covered by integration tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vip2clip.cli.main import main


def test_print_config_resolves_yaml_and_overrides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "train.yaml"
    path.write_text("dataset: {uri: /data/mvtec}\nstorage_uri: /tmp/runs\n")
    assert main(["train", str(path), "--set", "optimizer.epochs=2", "--print-config"]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["optimizer"]["epochs"] == 2 and resolved["dataset"]["uri"] == "/data/mvtec"


def test_bad_override_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["train", "--set", "dataset.uri=/d", "--set", "storage_uri=/r", "--set", "x"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("vip2clip: error:") and err.count("\n") == 1
    assert "Traceback" not in err


def test_missing_config_file_is_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", str(tmp_path / "nope.yaml"), "--print-config"]) == 2
    assert "does not exist" in capsys.readouterr().err
