"""A small scoring run submitted through the Jobs API, then a report of it: the S3
secret and the Ray token must not appear in anything the run wrote, the report
must escape hostile object keys, and every socket the cluster listens on must be
on loopback.

Grepped: every object under the table's warehouse (Parquet, Iceberg metadata), every
file of the Ray session's logs folder, the job's info and logs from the Jobs API,
the Pushgateway's metrics, the HTML report, and the CLI output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.fixtures.iceberg import CATALOG_NAME, TABLE, catalog_env
from tests.fixtures.s3 import TEST_CREDENTIALS
from tests.reliability.helpers import DETECTOR, RUN_DATE, image_bytes
from vip2clip.ops.auth import ResolvedToken
from vip2clip.ops.jobs_client import JobsClient
from vip2clip.ops.loopback import exposed_listeners, tcp_listeners

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 420
RUN_ID = "secrets-check"
N_IMAGES = 6
SECRET = TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]
# Object keys an attacker controls end up in the report: they must come out as text.
HOSTILE_OK_KEY = 'in/"><script>alert(1)</script>.png'
HOSTILE_ERROR_KEY = "in/<img src=x onerror=alert(2)>.jpg"
RAW_MARKUP = ("<script>alert(1)</script>", "<img src=x onerror=alert(2)>")


@dataclass(frozen=True)
class SubmittedRun:
    """What the submitted scoring run and its report left behind."""

    bucket: str
    job_id: str
    report: Path
    cli_output: str


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vip2clip.cli.main", *args],
        env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False, cwd=REPO,
    )  # fmt: skip


def _project(root: Path) -> Path:
    """What ``vip2clip submit`` ships: the package, the job scripts, pyproject."""
    for folder in ("vip2clip", "jobs"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.fixture(scope="module")
def submitted_run(
    ray_cluster: Any, s3_server: Any, pushgateway: Any, tmp_path_factory: pytest.TempPathFactory
) -> SubmittedRun:
    bucket = s3_server.new_bucket("secrets")
    client = s3_server.client()
    rng = np.random.default_rng(11)
    for i in range(N_IMAGES):
        client.put_object(Bucket=bucket, Key=f"in/img-{i}.png", Body=image_bytes(rng, 2 * i))
    client.put_object(Bucket=bucket, Key=HOSTILE_OK_KEY, Body=image_bytes(rng, 0))
    client.put_object(Bucket=bucket, Key=HOSTILE_ERROR_KEY, Body=b"<html>not an image</html>")
    tmp = tmp_path_factory.mktemp("secrets")
    # The table's warehouse is the bucket's out/ prefix; the job gets the catalog's plain
    # pyiceberg variables (--env), the credentials stay in the node environment.
    catalog = catalog_env(
        CATALOG_NAME, tmp / "catalog.db", f"s3://{bucket}/out", s3_server.endpoint
    )
    env = {**os.environ, **catalog, "RAY_ADDRESS": ray_cluster.dashboard_url}
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    submitted = _cli(
        "submit", "--project-dir", str(_project(tmp / "project")),
        *(f"--env={key}={value}" for key, value in catalog.items()), "--follow", "score",
        f"s3://{bucket}/in", TABLE, "--catalog", CATALOG_NAME, "--full", "--run-id", RUN_ID,
        "--run-date", RUN_DATE, "--no-progress", "--batch-size", "4",
        "--set", f"detector={DETECTOR.model_dump_json()}", "--set", f"push.url={pushgateway.url}",
        env=env,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout[-3000:] + submitted.stderr[-3000:]
    report = tmp / "report.html"
    reported = _cli(
        "report", "--table", TABLE, "--catalog", CATALOG_NAME, "--run", RUN_ID,
        "-o", str(report), env=env,
    )  # fmt: skip
    assert reported.returncode == 0, reported.stderr
    job_id = submitted.stdout.splitlines()[0].strip()
    outputs = submitted.stdout + submitted.stderr + reported.stdout + reported.stderr
    return SubmittedRun(bucket, job_id, report, outputs)


def _bucket_objects(s3_server: Any, bucket: str) -> dict[str, bytes]:
    client = s3_server.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="out/")["Contents"]]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def _session_logs(ray_cluster: Any) -> dict[str, bytes]:
    logs = Path(ray_cluster.temp_dir) / "session_latest" / "logs"
    assert logs.is_dir()
    return {str(p): p.read_bytes() for p in logs.rglob("*") if p.is_file()}


def _jobs_api(ray_cluster: Any, run: SubmittedRun) -> dict[str, bytes]:
    token = os.environ["RAY_AUTH_TOKEN"]
    client = JobsClient(ray_cluster.dashboard_url, ResolvedToken(token, "test"))
    request = urllib.request.Request(
        f"{ray_cluster.dashboard_url}/api/jobs/", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        listing = response.read()
    return {
        "jobs listing": listing,
        "job record": repr(client.status(run.job_id)).encode(),
        "job logs": client.logs(run.job_id).encode(),
    }


def _pushed_metrics(pushgateway: Any) -> dict[str, bytes]:
    found = {}
    for path in ("/metrics", "/api/v1/metrics"):
        with urllib.request.urlopen(pushgateway.url + path, timeout=30) as response:
            found[f"pushgateway {path}"] = response.read()
    return found


@pytest.mark.parametrize("secret_name", ["S3 secret key", "Ray auth token"])
def test_no_secret_in_anything_the_run_wrote(
    secret_name: str,
    submitted_run: SubmittedRun,
    ray_cluster: Any,
    s3_server: Any,
    pushgateway: Any,
) -> None:
    secret = SECRET if secret_name == "S3 secret key" else os.environ["RAY_AUTH_TOKEN"]
    everything = {
        **_bucket_objects(s3_server, submitted_run.bucket),
        **_session_logs(ray_cluster),
        **_jobs_api(ray_cluster, submitted_run),
        **_pushed_metrics(pushgateway),
        "report": submitted_run.report.read_bytes(),
        "cli output": submitted_run.cli_output.encode(),
    }
    assert any(name.endswith(".parquet") for name in everything)  # not grepping nothing
    assert RUN_ID.encode() in everything["pushgateway /metrics"]
    assert len(everything) > 10
    leaks = sorted(name for name, data in everything.items() if secret.encode() in data)
    assert not leaks, f"{secret_name} found in: {leaks}"


def test_report_escapes_hostile_object_keys(submitted_run: SubmittedRun) -> None:
    page = submitted_run.report.read_text(encoding="utf-8")
    for markup in RAW_MARKUP:
        assert markup not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page  # shown, as text
    assert "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "default-src 'none'" in page  # and no script could run even if one slipped


def test_cluster_listens_on_loopback_only(submitted_run: SubmittedRun, ray_cluster: Any) -> None:
    pids = set(ray_cluster.pids()) | {os.getpid()}  # nodes, workers, and this driver
    listeners = tcp_listeners(pids)
    assert len(listeners) > 3, listeners  # GCS, dashboard, raylet, workers ... were found
    assert exposed_listeners(pids) == []


def test_a_driver_without_the_token_is_refused(ray_cluster: Any) -> None:
    probe = f"import ray; ray.init(address={ray_cluster.address!r}); print('connected')"

    def connect(token: str | None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in ray_cluster.client_env().items() if k != "RAY_AUTH_TOKEN"}
        env.pop("RAY_AUTH_TOKEN_PATH", None)
        env["HOME"] = "/nonexistent"  # no ~/.ray token file either
        if token is not None:
            env["RAY_AUTH_TOKEN"] = token
        return subprocess.run(
            [sys.executable, "-c", probe], env=env, capture_output=True, text=True,
            timeout=120, check=False,
        )  # fmt: skip

    allowed = connect(os.environ["RAY_AUTH_TOKEN"])  # control: same probe, right token
    assert allowed.returncode == 0 and "connected" in allowed.stdout, allowed.stderr[-2000:]
    for token in (None, "f" * 64):
        refused = connect(token)
        assert refused.returncode != 0 and "connected" not in refused.stdout, token
