"""``jobs/evaluate.py``: a thin Ray-job wrapper of ``vip2clip evaluate``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

JOB = Path(__file__).resolve().parents[3] / "jobs" / "evaluate.py"


def _load_job() -> ModuleType:
    spec = importlib.util.spec_from_file_location("job_evaluate", JOB)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("args", "expected_tail"),
    [
        (["s3://b/ds"], ["s3://b/ds", "--ray-address", "auto"]),
        (["s3://b/ds", "--ray-address", "h:1"], ["s3://b/ds", "--ray-address", "h:1"]),
        (["s3://b/ds", "--ray-address=h:1"], ["s3://b/ds", "--ray-address=h:1"]),
    ],
)
def test_runs_evaluate_on_the_job_cluster(
    monkeypatch: pytest.MonkeyPatch, args: list[str], expected_tail: list[str]
) -> None:
    job = _load_job()
    calls: list[list[str]] = []
    monkeypatch.setattr(job, "cli_main", lambda argv: calls.append(argv) or 3)
    assert job.main(args) == 3
    assert calls == [["evaluate", *expected_tail]]


def test_user_errors_give_an_exit_code(tmp_path: Path) -> None:
    assert _load_job().main([str(tmp_path / "missing"), "--no-progress"]) != 0
