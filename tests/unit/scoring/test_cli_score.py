"""``vip2clip score`` and ``jobs/score.py``: argument handling up to the pipeline call."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from vip2clip.cli.main import main
from vip2clip.scoring import ScoringConfig

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> list[ScoringConfig]:
    """Replace the pipeline with a recorder; the CLI is tested, not the cluster."""
    import vip2clip.scoring as scoring
    from vip2clip.scoring.pipeline import ScoringSummary

    seen: list[ScoringConfig] = []

    def fake_run(config: ScoringConfig) -> ScoringSummary:
        seen.append(config)
        return ScoringSummary(
            run_id=config.resolved_run_id(), run_date="2026-11-25", mode=config.mode,
            model_id="m", table=config.table, listed=3, skipped=1, ok=1, errors=1,
            error_reasons={"truncated_image": 1}, seconds=2.0,
        )  # fmt: skip

    monkeypatch.setattr(scoring, "run_scoring", fake_run)
    return seen


def test_options_yaml_and_overrides_build_the_config(
    captured: list[ScoringConfig], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    yaml_file = tmp_path / "score.yaml"
    yaml_file.write_text("batch_size: 4\nnum_actors: 3\ndetector:\n  image_size: 224\n")
    code = main(
        ["score", "s3://in/x", "ns.scores", "--config", str(yaml_file), "--full",
         "--batch-size", "16", "--set", "num_actors=2", "--pretrained", "none",
         "--model", "vip2clip-tiny", "--run-id", "r1", "--gpus-per-actor", "0",
         "--catalog", "prod", "--commit-every", "500"]
    )  # fmt: skip
    assert code == 0
    (config,) = captured
    assert (config.source, config.table, config.mode) == ("s3://in/x", "ns.scores", "full")
    assert (config.catalog, config.commit_every) == ("prod", 500)
    assert (config.batch_size, config.num_actors, config.run_id) == (16, 2, "r1")
    assert config.detector.image_size == 224 and config.detector.backbone.pretrained is None
    assert config.gpus_per_actor == 0
    out = capsys.readouterr()
    assert "1 ok, 1 error (truncated_image=1), 1 skipped of 3 listed" in out.out
    assert '"source": "s3://in/x"' in out.err


def test_default_mode_is_incremental(captured: list[ScoringConfig]) -> None:
    assert main(["score", "in", "ns.out"]) == 0
    assert captured[0].mode == "incremental"


def test_bad_config_is_one_line_error(
    captured: list[ScoringConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["score", "in", "ns.out", "--set", "batch_size=0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vip2clip: error: invalid ScoringConfig")
    assert not captured


def test_table_must_be_an_iceberg_identifier(
    captured: list[ScoringConfig], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["score", "in", "s3://bucket/results"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "namespace.table" in err[0]
    assert not captured


def test_job_entrypoint_targets_its_own_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("score_job", REPO / "jobs" / "score.py")
    assert spec and spec.loader
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    calls: list[list[str]] = []

    def record(argv: list[str]) -> int:
        calls.append(argv)
        return 0

    monkeypatch.setattr(job, "cli_main", record)
    assert job.main(["s3://a", "s3://b"]) == 0
    assert job.main(["s3://a", "s3://b", "--ray-address=ray://h:10001"]) == 0
    assert calls == [
        ["score", "s3://a", "s3://b", "--ray-address", "auto"],
        ["score", "s3://a", "s3://b", "--ray-address=ray://h:10001"],
    ]
