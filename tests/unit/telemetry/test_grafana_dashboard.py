"""The Grafana dashboard is importable as is and queries only metrics that exist."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from vip2clip.telemetry.live import ALL_METRICS, MetricKind

DASHBOARD = Path(__file__).resolve().parents[3] / "deploy" / "grafana" / "vip2clip.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PUSHED = {
    "vip2clip_job_start_timestamp_seconds",
    "vip2clip_job_end_timestamp_seconds",
    "vip2clip_job_duration_seconds",
    "vip2clip_job_objects",
    "vip2clip_job_images_per_second",
    "vip2clip_job_exit_status",
    "vip2clip_job_last_success_timestamp_seconds",
    "vip2clip_job_info",
}
# What Grafana substitutes before sending a query; enough to parse it as PromQL.
GRAFANA_SUBSTITUTIONS = {
    "$__rate_interval": "5m",
    "$job_kind": ".*",
    "$job_name": ".*",
    "$run_id": ".*",
}


def known_series() -> set[str]:
    names = set(PUSHED)
    for spec in ALL_METRICS:
        names.add(spec.exported_name)
        if spec.kind is MetricKind.HISTOGRAM:
            names |= {f"{spec.exported_name}_{part}" for part in ("bucket", "sum", "count")}
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def query_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in query_panels(dashboard) for t in p["targets"]]


def test_importable_with_a_datasource_variable(dashboard: dict[str, Any]) -> None:
    assert dashboard["id"] is None and dashboard["uid"]
    variables = {var["name"]: var for var in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in query_panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert all(target["datasource"] == DATASOURCE for target in panel["targets"])
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])


def test_covers_the_required_views(dashboard: dict[str, Any]) -> None:
    exprs = "\n".join(expressions(dashboard))
    for needed in (
        'ray_vip2clip_objects_total{stage="scored"',  # throughput
        "sum by (reason) (rate(ray_vip2clip_errors_total",  # errors by reason
        "ray_vip2clip_stage_latency_seconds_bucket",  # stage latencies
        "vip2clip_job_last_success_timestamp_seconds",  # last success
        "vip2clip_job_duration_seconds",  # run durations
    ):
        assert needed in exprs, needed


def test_queries_only_documented_metrics(dashboard: dict[str, Any]) -> None:
    used = set(re.findall(r"\b(?:ray_)?vip2clip_[a-z_]+", "\n".join(expressions(dashboard))))
    assert used and used <= known_series(), used - known_series()


def test_every_query_is_valid_promql(tmp_path: Path, dashboard: dict[str, Any]) -> None:
    rules = []
    for index, expr in enumerate(expressions(dashboard)):
        for variable, value in GRAFANA_SUBSTITUTIONS.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, expr
        rules.append({"record": f"dashboard:query_{index}", "expr": expr})
    rule_file = tmp_path / "dashboard.rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run `make system-deps`"
    done = subprocess.run(
        [promtool, "check", "rules", str(rule_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
