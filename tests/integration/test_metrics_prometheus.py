"""Metrics end to end: real Pushgateway, real Prometheus (deploy config and rules), real Ray."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from tests.fixtures.iceberg import TABLE, IcebergCatalog
from tests.fixtures.prometheus import PrometheusServer, Pushgateway
from vip2clip.telemetry import JobSummary, PushConfig, push_job_summary

pytestmark = pytest.mark.integration

Result = list[dict[str, Any]]
LIVE_TIMEOUT_S = 120.0  # Ray exports every few seconds; the test host may be busy
RAY_SD_FILE = "prom_metrics_service_discovery.json"  # in the Ray session dir (Ray 2.60)


def by_label(result: Result, label: str) -> dict[str, float]:
    return {row["metric"].get(label, ""): float(row["value"][1]) for row in result}


def scalar(prometheus: PrometheusServer, promql: str) -> float:
    result = prometheus.wait_for(promql, lambda r: len(r) == 1)
    return float(result[0]["value"][1])


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_pushed_summary_reaches_prometheus_and_nights_overwrite(
    prometheus: PrometheusServer, pushgateway: Pushgateway
) -> None:
    config = PushConfig(url=pushgateway.url)
    name = unique_name("nightly-it")
    sel = f'job="vip2clip", job_name="{name}", job_kind="score"'
    night_1 = JobSummary(
        job_kind="score",
        job_name=name,
        run_id="run-1",
        model_id="model-a",
        start_time=1_000.0,
        end_time=1_040.0,
        objects_ok=80,
        objects_error=3,
        objects_skipped=17,
    )
    assert push_job_summary(config, night_1)

    objects = prometheus.wait_for(f"vip2clip_job_objects{{{sel}}}", lambda r: len(r) == 3)
    assert by_label(objects, "status") == {"ok": 80.0, "error": 3.0, "skipped": 17.0}
    assert scalar(prometheus, f"vip2clip_job_duration_seconds{{{sel}}}") == 40.0
    assert scalar(prometheus, f"vip2clip_job_images_per_second{{{sel}}}") == 2.0
    assert scalar(prometheus, f"vip2clip_job_exit_status{{{sel}}}") == 0.0
    assert scalar(prometheus, f"vip2clip_job_last_success_timestamp_seconds{{{sel}}}") == 1_040.0

    night_2 = replace(
        night_1,
        run_id="run-2",
        start_time=2_000.0,
        end_time=2_010.0,
        objects_ok=1,
        objects_error=9,
        objects_skipped=0,
        exit_status=1,
    )
    assert push_job_summary(config, night_2)

    info = prometheus.wait_for(
        f"vip2clip_job_info{{{sel}}}",
        lambda r: len(r) == 1 and r[0]["metric"]["run_id"] == "run-2",
    )
    assert info[0]["metric"]["model_id"] == "model-a"
    objects = prometheus.wait_for(
        f"vip2clip_job_objects{{{sel}}}",
        lambda r: by_label(r, "status") == {"ok": 1.0, "error": 9.0, "skipped": 0.0},
    )
    assert scalar(prometheus, f"vip2clip_job_exit_status{{{sel}}}") == 1.0
    assert scalar(prometheus, f"vip2clip_job_end_timestamp_seconds{{{sel}}}") == 2_010.0
    # The failed night does not erase the last success.
    assert scalar(prometheus, f"vip2clip_job_last_success_timestamp_seconds{{{sel}}}") == 1_040.0


def test_failed_training_summary_fires_the_alert(
    prometheus: PrometheusServer, pushgateway: Pushgateway
) -> None:
    rules = prometheus.api("rules")["groups"]
    loaded = {rule["name"]: rule["health"] for group in rules for rule in group["rules"]}
    assert loaded["Vip2clipTrainingFailed"] == "ok"
    assert len(loaded) == 9

    name = unique_name("train-it")
    failed = JobSummary(
        job_kind="train",
        job_name=name,
        run_id="t-1",
        model_id="model-a",
        start_time=1_000.0,
        end_time=1_100.0,
        exit_status=1,
    )
    assert push_job_summary(PushConfig(url=pushgateway.url), failed)
    firing = prometheus.wait_for(
        f'ALERTS{{alertname="Vip2clipTrainingFailed", job_name="{name}", alertstate="firing"}}',
        lambda r: len(r) == 1,
    )
    assert firing[0]["metric"]["severity"] == "critical"


def test_live_counters_from_ray_workers_are_scraped(
    ray_cluster: Any, prometheus: PrometheusServer
) -> None:
    import ray

    from vip2clip.telemetry import PipelineMetrics, TrainingMetrics

    session = ray_cluster.temp_dir / "session_latest"
    prometheus.add_file_sd("ray", session / RAY_SD_FILE)
    run_id = unique_name("live")

    @ray.remote
    def process(n_ok: int, n_error: int) -> None:
        import numpy as np

        metrics = PipelineMetrics("score", run_id, "model-a")
        metrics.objects("read", n_ok + n_error)
        metrics.objects("skipped", 0)  # Ray counters refuse 0: must be a silent no-op
        metrics.bytes_read(np.int64(1_000 * (n_ok + n_error)))  # numpy counts are accepted
        metrics.objects("scored", n_ok)
        if n_error:
            metrics.error("truncated_image", n_error)
        metrics.error("read_failed")
        metrics.observe_latency("inference", 0.2)
        metrics.batch_size(n_ok)

    @ray.remote
    def train_step() -> None:
        metrics = TrainingMetrics(run_id, "model-a")
        metrics.epoch(2)
        metrics.step(seconds=0.5, loss=1.25, image_loss=0.5, samples=8)
        metrics.checkpoint_written()

    ray.get([process.remote(5, 1), process.remote(7, 2), process.remote(3, 0)])
    ray.get(train_step.remote())

    run = f'run_id="{run_id}", job_kind="score", model_id="model-a"'

    def total(promql: str, expected: float) -> None:
        prometheus.wait_for(
            promql,
            lambda r: len(r) == 1 and float(r[0]["value"][1]) == expected,
            timeout_s=LIVE_TIMEOUT_S,
        )

    total(f'sum(ray_vip2clip_objects_total{{{run}, stage="read"}})', 18)
    total(f'sum(ray_vip2clip_objects_total{{{run}, stage="scored"}})', 15)
    total(f"sum(ray_vip2clip_bytes_read_total{{{run}}})", 18_000)
    total(f'sum(ray_vip2clip_stage_latency_seconds_count{{{run}, stage="inference"}})', 3)
    total(f"sum(ray_vip2clip_batch_size_sum{{{run}}})", 15)
    errors = prometheus.wait_for(
        f"sum by (reason) (ray_vip2clip_errors_total{{{run}}})",
        lambda r: by_label(r, "reason") == {"truncated_image": 3.0, "read_failed": 3.0},
        timeout_s=LIVE_TIMEOUT_S,
    )
    assert len(errors) == 2

    train = f'run_id="{run_id}", job_kind="train"'
    total(f"sum(ray_vip2clip_train_samples_total{{{train}}})", 8)
    total(f"sum(ray_vip2clip_train_checkpoints_total{{{train}}})", 1)
    total(f"max(ray_vip2clip_train_loss{{{train}}})", 1.25)
    total(f"max(ray_vip2clip_train_epoch{{{train}}})", 2)


N_GOOD_IMAGES = 12
SCORING_TIMEOUT_S = 180.0


def _small_archive(s3_server: Any) -> tuple[str, int, Counter[str]]:
    """Upload good images plus one bad input per error reason; their exact outcomes."""
    import io

    import numpy as np
    from PIL import Image

    from tests.fixtures.bad_inputs import OK, bad_input_corpus

    bucket = s3_server.new_bucket("metrics-src")
    client = s3_server.client()
    rng = np.random.default_rng(7)
    for i in range(N_GOOD_IMAGES):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64, 80, 3), dtype=np.uint8)).save(buffer, "PNG")
        client.put_object(Bucket=bucket, Key=f"cam/good-{i:02d}.png", Body=buffer.getvalue())
    errors: Counter[str] = Counter()
    for item in bad_input_corpus():
        if item.expected != OK and item.expected not in errors and ".." not in item.key:
            client.put_object(Bucket=bucket, Key=f"cam/{item.key}", Body=item.data)
            errors[item.expected] += 1
    return f"s3://{bucket}/cam", N_GOOD_IMAGES, errors


def test_scoring_run_counts_match_in_pushed_summary_and_live_counters(
    ray_cluster: Any,
    s3_server: Any,
    s3_catalog: IcebergCatalog,
    prometheus: PrometheusServer,
    pushgateway: Pushgateway,
) -> None:
    from vip2clip.model import BackboneSpec, DetectorConfig
    from vip2clip.scoring import ScoringConfig, run_scoring

    prometheus.add_file_sd("ray", ray_cluster.temp_dir / "session_latest" / RAY_SD_FILE)
    source, n_ok, errors = _small_archive(s3_server)
    n_error = sum(errors.values())
    assert n_error >= 3
    name = unique_name("nightly-it-score")
    run_id = unique_name("metrics-run")
    config = ScoringConfig.model_validate(
        {
            "source": source,
            "table": TABLE,
            "catalog": s3_catalog.name,
            "detector": DetectorConfig(backbone=BackboneSpec.tiny(), image_size=112),
            "mode": "full",
            "batch_size": 4,
            "progress": False,
            "run_id": run_id,
            "job_name": name,
            "push": {"url": pushgateway.url},
        }
    )
    summary = run_scoring(config)
    assert (summary.ok, summary.errors) == (n_ok, n_error)
    assert len(s3_catalog.rows(run_id)) == n_ok + n_error  # what was counted was committed
    assert summary.error_reasons == dict(errors)

    pushed = f'job="vip2clip", job_name="{name}", job_kind="score"'
    objects = prometheus.wait_for(f"vip2clip_job_objects{{{pushed}}}", lambda r: len(r) == 3)
    assert by_label(objects, "status") == {"ok": n_ok, "error": n_error, "skipped": 0}
    assert scalar(prometheus, f"vip2clip_job_exit_status{{{pushed}}}") == 0.0
    info = prometheus.wait_for(f"vip2clip_job_info{{{pushed}}}", lambda r: len(r) == 1)
    assert info[0]["metric"]["run_id"] == run_id

    run = f'run_id="{run_id}", job_kind="score"'

    def live(promql: str, expected: dict[str, float], label: str) -> None:
        prometheus.wait_for(
            promql, lambda r: by_label(r, label) == expected, timeout_s=SCORING_TIMEOUT_S
        )

    live(
        f"sum by (stage) (ray_vip2clip_objects_total{{{run}}})",
        {
            "listed": n_ok + n_error,
            "read": n_ok + n_error,
            "scored": n_ok,
            "written": n_ok + n_error,
            "decoded": n_ok,
        },
        "stage",
    )
    live(
        f"sum by (reason) (ray_vip2clip_errors_total{{{run}}})",
        {reason: float(count) for reason, count in errors.items()},
        "reason",
    )
