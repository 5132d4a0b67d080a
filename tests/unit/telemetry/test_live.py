"""Live metric definitions, label bounds and the no-op path outside Ray."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vip2clip.telemetry import live
from vip2clip.telemetry.live import (
    ALL_METRICS,
    JOB_LABELS,
    MAX_ERROR_REASONS,
    OTHER_REASON,
    MetricKind,
    PipelineMetrics,
    TrainingMetrics,
)

DOCS = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"
ALLOWED_LABELS = {*JOB_LABELS, "stage", "reason"}


def test_every_metric_has_bounded_labels_and_the_project_prefix() -> None:
    for spec in ALL_METRICS:
        assert spec.name.startswith("vip2clip_"), spec.name
        assert set(spec.labels) <= ALLOWED_LABELS, spec.name
        assert spec.labels[:3] == JOB_LABELS
        assert len(spec.extra_labels) <= 1
        if spec.kind is MetricKind.HISTOGRAM:
            assert list(spec.buckets) == sorted(set(spec.buckets)) and spec.buckets[0] > 0
    names = [spec.exported_name for spec in ALL_METRICS]
    assert len(names) == len(set(names))


def test_exported_names_follow_ray_and_prometheus_conventions() -> None:
    assert live.OBJECTS.exported_name == "ray_vip2clip_objects_total"
    assert live.STAGE_LATENCY.exported_name == "ray_vip2clip_stage_latency_seconds"
    assert live.ACTORS_BUSY.exported_name == "ray_vip2clip_actors_busy"


def test_unknown_stages_are_rejected() -> None:
    metrics = PipelineMetrics("score", "run-1", "model-a")
    with pytest.raises(ValueError, match="unknown stage 'decode'"):
        metrics.objects("decode")
    with pytest.raises(ValueError, match="unknown stage 'decoded'"):
        metrics.observe_latency("decoded", 0.1)


def test_negative_counts_are_rejected() -> None:
    metrics = PipelineMetrics("score", "run-1", "model-a")
    with pytest.raises(ValueError, match="negative"):
        metrics.objects("read", -1)
    with pytest.raises(ValueError, match="negative"):
        metrics.error("read_failed", -2)
    with pytest.raises(ValueError, match="negative"):
        metrics.bytes_read(-3)
    with pytest.raises(ValueError, match="negative"):
        TrainingMetrics("run-1", "model-a").step(0.1, 1.0, 0.5, samples=-8)


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("truncated_image", "truncated_image"),
        ("read_failed", "read_failed"),
        ("Truncated Image", OTHER_REASON),
        ("s3://bucket/images/0001.png", OTHER_REASON),
        ("x" * 49, OTHER_REASON),
        ("", OTHER_REASON),
    ],
)
def test_error_reasons_must_be_short_codes(reason: str, expected: str) -> None:
    assert live._Registry().bounded_reason(reason) == expected


def test_distinct_error_reasons_are_capped_per_process() -> None:
    registry = live._Registry()
    kept = [registry.bounded_reason(f"reason_{i}") for i in range(MAX_ERROR_REASONS)]
    assert kept == [f"reason_{i}" for i in range(MAX_ERROR_REASONS)]
    assert registry.bounded_reason("one_too_many") == OTHER_REASON
    assert registry.bounded_reason("reason_0") == "reason_0"


def test_busy_actor_count_accumulates_per_run() -> None:
    registry = live._Registry()
    run_a, run_b = ("score", "a", "m"), ("score", "b", "m")
    assert [registry.add_busy(run_a, 1), registry.add_busy(run_a, 1)] == [1, 2]
    assert registry.add_busy(run_b, 1) == 1
    assert registry.add_busy(run_a, -1) == 1


def test_training_metrics_carry_the_train_job_kind() -> None:
    assert TrainingMetrics("run-7", "model-a").tags == {
        "job_kind": "train",
        "run_id": "run-7",
        "model_id": "model-a",
    }


def test_outside_ray_every_call_is_a_no_op_and_ray_is_not_imported() -> None:
    # A fresh interpreter: this test process may already hold a Ray connection.
    code = """
import sys
from vip2clip.telemetry import PipelineMetrics, TrainingMetrics
from vip2clip.telemetry.live import ALL_METRICS, _REGISTRY
m = PipelineMetrics("score", "r", "m")
m.objects("listed", 3); m.error("read_failed"); m.bytes_read(10)
m.observe_latency("inference", 0.5); m.batch_size(8); m.actors_busy(1)
t = TrainingMetrics("r", "m")
t.step(0.5, 1.0, 0.3, 8); t.epoch(1); t.checkpoint_written()
assert "ray" not in sys.modules, "telemetry imported ray"
assert all(_REGISTRY.instrument(spec) is None for spec in ALL_METRICS)
print("no-op")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "no-op"


def test_every_live_metric_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    missing = [spec.exported_name for spec in ALL_METRICS if f"`{spec.exported_name}`" not in text]
    assert missing == []
