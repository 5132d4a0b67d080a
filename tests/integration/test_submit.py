"""`vip2clip submit` / `vip2clip jobs` against a real token-authenticated Ray cluster.

The CLI runs as a subprocess, exactly as a user runs it; the token reaches it
through the environment and must never show up in its output, the job's
metadata or the job's logs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.iceberg import TABLE, IcebergCatalog
from tests.fixtures.net import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 300
PROBE = '''"""Test job: proves the shipped code runs and the driver reaches the cluster."""
import os
import sys

import ray
import vip2clip.ops

print("shipped:", "working_dir_files" in vip2clip.ops.__file__)
print("token in driver env:", "RAY_AUTH_TOKEN" in os.environ)
ray.init()
print("remote sum:", sum(ray.get([ray.remote(lambda x: 2 * x).remote(i) for i in range(4)])))
sys.exit(int(sys.argv[1]))
'''


@pytest.fixture(scope="module")
def probe_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minimal project (package + pyproject + a probe job) to ship."""
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(
        REPO / "vip2clip", root / "vip2clip", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copy(REPO / "pyproject.toml", root / "pyproject.toml")
    (root / "cluster").mkdir()
    shutil.copy(REPO / "cluster" / "runtime_env.yaml", root / "cluster" / "runtime_env.yaml")
    (root / "jobs").mkdir()
    (root / "jobs" / "probe.py").write_text(PROBE)
    return root


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vip2clip.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
        cwd=REPO,
    )


def cli_env(ray_cluster: Any, **overrides: str | None) -> dict[str, str]:
    env = {**os.environ, "RAY_ADDRESS": ray_cluster.dashboard_url}
    env.pop("RAY_AUTH_TOKEN_PATH", None)
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("vip2clip: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_submit_follow_status_logs_and_failed_job(ray_cluster: Any, probe_project: Path) -> None:
    token = os.environ["RAY_AUTH_TOKEN"]
    env = cli_env(ray_cluster)
    base = ("submit", "--project-dir", str(probe_project))

    failing = run_cli(*base, "jobs/probe.py", "3", env=env)
    assert failing.returncode == 0, failing.stderr
    failing_id = failing.stdout.strip()

    ok = run_cli(*base, "--follow", "jobs/probe.py", "0", env=env)
    assert ok.returncode == 0, ok.stderr
    job_id = ok.stdout.splitlines()[0]
    assert "shipped: True" in ok.stdout
    assert "remote sum: 12" in ok.stdout
    assert "token in driver env: False" in ok.stdout

    followed = run_cli("jobs", "logs", "--follow", failing_id, env=env)
    assert_one_line_error(followed, failing_id, "FAILED", "exit code 3")

    status = run_cli("jobs", "status", job_id, env=env)
    assert status.returncode == 0 and "SUCCEEDED" in status.stdout
    listed = run_cli("jobs", "list", env=env)
    assert job_id in listed.stdout and failing_id in listed.stdout
    logs = run_cli("jobs", "logs", job_id, env=env)
    assert "remote sum: 12" in logs.stdout

    from vip2clip.ops.auth import ResolvedToken
    from vip2clip.ops.jobs_client import JobsClient

    client = JobsClient(ray_cluster.dashboard_url, ResolvedToken(token, "test"))
    record = client.status(job_id)
    assert record.metadata["vip2clip.kind"] == "jobs/probe.py"
    assert record.runtime_env["env_vars"]["PYTHONUNBUFFERED"] == "1"
    assert not any("AWS" in name for name in record.runtime_env["env_vars"])
    everything = [ok.stdout, ok.stderr, failing.stdout, followed.stderr, status.stdout]
    everything += [listed.stdout, logs.stdout, str(record), client.logs(failing_id)]
    assert not any(token in text for text in everything)


def test_stop_a_running_job(ray_cluster: Any, probe_project: Path) -> None:
    (probe_project / "jobs" / "sleepy.py").write_text("import time\ntime.sleep(600)\n")
    env = cli_env(ray_cluster)
    submitted = run_cli("submit", "--project-dir", str(probe_project), "jobs/sleepy.py", env=env)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    stopped = run_cli("jobs", "stop", "--wait", job_id, env=env)
    assert stopped.returncode == 0, stopped.stderr
    assert f"job {job_id} STOPPED" in stopped.stdout
    status = run_cli("jobs", "status", job_id, env=env)
    assert_one_line_error(status, job_id, "STOPPED")


def test_wrong_token_gives_one_line(ray_cluster: Any) -> None:
    wrong = "0" * 64
    proc = run_cli("jobs", "list", env=cli_env(ray_cluster, RAY_AUTH_TOKEN=wrong))
    assert_one_line_error(proc, "rejected the token")
    assert wrong not in proc.stderr + proc.stdout


@pytest.mark.parametrize("client_auth_mode", ["token", None])
def test_missing_token_gives_one_line(
    ray_cluster: Any, tmp_path: Path, client_auth_mode: str | None
) -> None:
    """Refused by Ray's client-side check (mode set locally) or by the server (401)."""
    env = cli_env(
        ray_cluster, RAY_AUTH_TOKEN=None, HOME=str(tmp_path), RAY_AUTH_MODE=client_auth_mode
    )
    proc = run_cli("jobs", "list", env=env)
    assert_one_line_error(proc, "requires a token", "RAY_AUTH_TOKEN")


def test_unknown_job_gives_one_line(ray_cluster: Any) -> None:
    proc = run_cli("jobs", "status", "raysubmit_nope", env=cli_env(ray_cluster))
    assert_one_line_error(proc, "no job 'raysubmit_nope'")


def test_unreachable_cluster_gives_one_line() -> None:
    address = f"http://127.0.0.1:{free_port()}"
    proc = run_cli("jobs", "list", "--address", address, env=dict(os.environ))
    assert_one_line_error(proc, "cannot reach", address)


def test_http_client_without_token_is_refused(ray_cluster: Any) -> None:
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(f"{ray_cluster.dashboard_url}/api/jobs/", timeout=10)
    assert refused.value.code == 401
    request = urllib.request.Request(
        f"{ray_cluster.dashboard_url}/api/jobs/",
        headers={"Authorization": f"Bearer {os.environ['RAY_AUTH_TOKEN']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_secret_in_job_env_is_refused_before_submission(
    ray_cluster: Any, probe_project: Path
) -> None:
    proc = run_cli(
        "submit",
        "--project-dir",
        str(probe_project),
        "--env",
        "AWS_SECRET_ACCESS_KEY=abc",
        "jobs/probe.py",
        "0",
        env=cli_env(ray_cluster),
    )
    assert_one_line_error(proc, "AWS_SECRET_ACCESS_KEY", "secret")


SUBMIT_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.mark.parametrize(
    ("where", "args"),
    [
        ("job source", ("score", f"s3://AKIAIOSFODNN7EXAMPLE:{SUBMIT_SECRET}@b/in", "ns.out")),
        ("--set value", ("score", "s3://b/in", "ns.out", "--set",
                         f'detector={{"learner": "s3://k:{SUBMIT_SECRET}@b/l.safetensors"}}')),
        ("--set key", ("score", "s3://b/in", "ns.out", "--set",
                       f"storage.aws_secret_access_key={SUBMIT_SECRET}")),
        ("shell secret", ("jobs/probe.py", f"--token={SUBMIT_SECRET}")),
        ("--env CREDS", ("--env", f"MY_CREDS={SUBMIT_SECRET}", "jobs/probe.py", "0")),
        ("--env *_PWD", ("--env", f"SMTP_PWD={SUBMIT_SECRET}", "jobs/probe.py", "0")),
    ],
)  # fmt: skip
def test_secret_in_job_arguments_is_refused_and_reaches_no_job(
    ray_cluster: Any, probe_project: Path, where: str, args: tuple[str, ...]
) -> None:
    env = cli_env(ray_cluster, DEPLOY_API_KEY=SUBMIT_SECRET)  # a secret of this shell
    proc = run_cli("submit", "--project-dir", str(probe_project), *args, env=env)
    assert_one_line_error(proc, "credential" if "--env" not in where else "secret")
    assert SUBMIT_SECRET not in proc.stdout + proc.stderr
    assert not any(part in proc.stderr for part in SUBMIT_SECRET.split("/"))
    request = urllib.request.Request(
        f"{ray_cluster.dashboard_url}/api/jobs/",
        headers={"Authorization": f"Bearer {os.environ['RAY_AUTH_TOKEN']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        listing = response.read().decode()
    # the API lists entrypoints (this test's own driver among them): not an error page
    assert any(job.get("entrypoint") for job in json.loads(listing))
    assert SUBMIT_SECRET not in listing and "EXAMPLEKEY" not in listing
    listed = run_cli("jobs", "list", env=cli_env(ray_cluster))
    assert listed.returncode == 0 and "EXAMPLEKEY" not in listed.stdout


SCORED_IMAGES = 6
IMAGE_PX = 64


def test_real_scoring_job_runs_to_completion(
    ray_cluster: Any, s3_server: Any, s3_catalog: IcebergCatalog
) -> None:
    """A scoring job submitted to the cluster commits its rows to an Iceberg table on S3;
    the catalog reaches the job as plain pyiceberg variables (``--env``, no secrets)."""
    import io
    import json

    import numpy as np
    from PIL import Image
    from pyiceberg.expressions import EqualTo

    from vip2clip import storage

    bucket = s3_server.new_bucket("submit-score")
    rng = np.random.default_rng(7)
    for index in range(SCORED_IMAGES):
        pixels = rng.integers(0, 256, (IMAGE_PX, IMAGE_PX, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        storage.write_bytes(f"s3://{bucket}/archive/img_{index}.png", buffer.getvalue())
    catalog_env = [f"--env={key}={value}" for key, value in s3_catalog.env.items()]
    proc = run_cli(
        "submit",
        *catalog_env,
        "--follow",
        "score",
        f"s3://{bucket}/archive/",
        TABLE,
        *("--catalog", s3_catalog.name, "--run-id", "submitted"),
        *("--model", "vip2clip-tiny", "--pretrained", "none", "--image-size", "112"),
        *("--device", "cpu", "--batch-size", "4", "--num-actors", "1"),
        *("--no-progress", "--json"),
        env=cli_env(ray_cluster),
    )
    assert proc.returncode == 0, proc.stderr[-2000:] + proc.stdout[-4000:]
    (summary_line,) = [line for line in proc.stdout.splitlines() if line.startswith('{"')]
    summary = json.loads(summary_line)
    assert (summary["listed"], summary["ok"], summary["errors"]) == (
        SCORED_IMAGES,
        SCORED_IMAGES,
        0,
    )
    rows = s3_catalog.results().read(EqualTo("run_id", "submitted"), ["source_uri", "status"])
    assert rows.num_rows == SCORED_IMAGES
    assert set(rows.column("status").to_pylist()) == {"ok"}
    assert summary["snapshot_id"] == s3_catalog.results().snapshot_id()
    secrets = [os.environ["RAY_AUTH_TOKEN"], s3_server.env["AWS_SECRET_ACCESS_KEY"]]
    assert not any(secret in proc.stdout + proc.stderr for secret in secrets)
