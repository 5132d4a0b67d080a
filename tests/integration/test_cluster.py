"""`vip2clip cluster up|status|down`: two real nodes, token auth, loopback only, clean stop.

Confinement (issue 18): every process of the cluster, Ray's renamed agents
included, listens on loopback only (``ss -ltnp``); the session folder lies under
a 0700 folder of this user; after ``down`` no process of the cluster is left and
none of its ports is still listening.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.net import ss_listeners
from vip2clip.local_cluster import CLUSTER_ID_ENV, STATE_FILE_NAME, LocalCluster, pids_with_env
from vip2clip.ops.runtime_dir import is_private

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 300
MIN_LISTENING = 8  # two nodes: GCS, dashboard, client server, raylets, agents ...


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


def test_cluster_up_status_down(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    up = run_cli("cluster", "up", "--workers", "1", "--state-dir", str(state), env=env)
    match = re.search(r"id ([0-9a-f]+)", up.stdout)
    cluster_id = match.group(1) if match else ""
    try:
        assert up.returncode == 0, up.stderr
        token_file = state / "auth_token"
        token = token_file.read_text().strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        for text in (up.stdout, up.stderr, (state / "env.sh").read_text()):
            assert token not in text
        assert token not in (state / "cluster.json").read_text()

        local = LocalCluster.from_state(state / STATE_FILE_NAME)
        listening = ss_listeners(set(local.pids()))
        assert len(listening) >= MIN_LISTENING, listening
        assert [item for item in listening if not item.loopback] == []
        assert local.temp_dir is not None and is_private(local.temp_dir.parent)

        status = run_cli("cluster", "status", "--state-dir", str(state), env=env)
        assert status.returncode == 0, status.stderr
        assert "2 node(s)" in status.stdout
        assert "every listening socket is on loopback" in status.stdout

        again = run_cli("cluster", "up", "--state-dir", str(state), env=env)
        assert again.returncode != 0
        assert again.stderr.strip().splitlines() == [
            f"vip2clip: error: a local cluster is already running (state in {state}); "
            "run `vip2clip cluster down` first"
        ]

        exports = dict(re.findall(r"export (\w+)=(\S+)", (state / "env.sh").read_text()))
        listed = run_cli("jobs", "list", env={**env, **exports})
        assert listed.returncode == 0, listed.stderr
        assert pids_with_env(CLUSTER_ID_ENV, cluster_id)
    finally:
        down = run_cli("cluster", "down", "--state-dir", str(state), env=env)
    assert down.returncode == 0, down.stderr
    assert re.match(r"cluster down: stopped \d+ process\(es\)", down.stdout)
    assert cluster_id and not pids_with_env(CLUSTER_ID_ENV, cluster_id)
    assert local.pids() == []  # agents too: they hide the cluster id, not their group
    ports = {item.port for item in listening}
    assert not [item for item in ss_listeners() if item.port in ports]
    assert not local.temp_dir.exists()
    assert not (state / "auth_token").exists()
    after = run_cli("cluster", "status", "--state-dir", str(state), env=env)
    assert after.returncode != 0 and "no local cluster recorded" in after.stderr


DRIVER = """
import sys
import ray
try:
    ray.init(address=sys.argv[1], log_to_driver=False)
except Exception as exc:
    print("refused:", type(exc).__name__, " ".join(str(exc).split()))
    sys.exit(3)
print("connected")
"""


@pytest.mark.parametrize("token", ["session", None, "f" * 64])
def test_only_a_driver_with_the_token_connects(
    ray_cluster: Any, tmp_path: Path, token: str | None
) -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in {"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"}
    }
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    if token is not None:
        env["RAY_AUTH_TOKEN"] = ray_cluster.token if token == "session" else token
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, ray_cluster.address],
        env=env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    if token == "session":
        assert proc.returncode == 0 and "connected" in proc.stdout, proc.stderr[-2000:]
    else:
        assert proc.returncode == 3, proc.stderr[-2000:]
        assert proc.stdout.startswith("refused:")
        output = proc.stdout + proc.stderr
        assert re.search(r"InvalidAuthToken|authentication token", output), output[-2000:]
