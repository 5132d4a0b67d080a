"""The implicit local Ray (``score``/``train``/``evaluate`` without a cluster) is confined.

A fresh interpreter, with no Ray address, token or loopback setting in its
environment and an empty home, connects through
:func:`vip2clip.ops.connect.connect_ray` and runs tasks, as the CLI does. While
it runs, ``ss -ltnp`` must show its processes (driver, GCS, raylet, agents,
workers) listening on loopback only, metrics included; its token file is 0600 and
``~/.ray/auth_token`` is never written; its session folder lies under a 0700
folder of this user, below which no folder on the way is writable by others
without the sticky bit. When the driver exits, nothing of it is left running or
listening, and its files are gone. (The dev cluster's half of this is
``tests/integration/test_cluster.py``.)
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.net import ss_listeners
from vip2clip.ops.runtime_dir import is_private

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 180  # Ray start on 2 shared cores
EXIT_TIMEOUT_S = 60
OBJECT_STORE_BYTES = 80 * 1024**2  # Ray's minimum: keep the instance small
# Ray processes started by the driver: at least GCS, raylet, an agent and a worker listen.
MIN_LISTENING = 4

DRIVER = """
import json, os, sys
from vip2clip.ops.connect import connect_ray

local = connect_ray(num_cpus=1, object_store_bytes=int(sys.argv[1]))
import ray

@ray.remote
def pid():
    return os.getpid()

workers = sorted(set(ray.get([pid.remote() for _ in range(4)])))
print(json.dumps({
    "session_root": str(local.session_root),
    "token_file": str(local.token_file),
    "workers": workers,
    "node_ip": ray.util.get_node_ip_address(),
}), flush=True)
sys.stdin.readline()  # hold the instance up until the test has looked
"""

DROPPED_ENV = ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE")


@dataclass
class Driver:
    """A running driver process that started a local Ray, and what it reported."""

    proc: subprocess.Popen[str]
    info: dict[str, Any]
    home: Path


@pytest.fixture
def local_driver(tmp_path: Path) -> Iterator[Driver]:
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env = {k: v for k, v in env.items() if not k.startswith("RAY_ENABLE_WINDOWS")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, "-c", DRIVER, str(OBJECT_STORE_BYTES)],
        env=env, cwd=REPO, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        line = _read_line(proc, START_TIMEOUT_S)
        yield Driver(proc, json.loads(line), tmp_path)
    finally:
        _end(proc)


def _end(proc: subprocess.Popen[str]) -> None:
    """Let the driver exit (and clean up); kill its session only if it does not."""
    if proc.poll() is not None:
        return
    try:
        assert proc.stdin is not None
        proc.stdin.write("done\n")
        proc.stdin.flush()
        proc.wait(EXIT_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)  # our own session: the driver and its Ray
        proc.wait(EXIT_TIMEOUT_S)


def _read_line(proc: subprocess.Popen[str], timeout_s: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("{"):
            return line
        if not line and proc.poll() is not None:
            break
    stderr = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
    raise AssertionError(f"driver did not report (exit {proc.poll()}): {stderr[-3000:]}")


def _descendants(root: int) -> set[int]:
    """``root`` and every process below it (from ``/proc/<pid>/stat`` parent ids)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found, frontier = {root}, {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited child nobody reaped holds no socket)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _open_to_others(folder: Path) -> bool:
    mode = folder.stat().st_mode
    return bool(mode & stat.S_IWOTH) and not mode & stat.S_ISVTX


def test_the_implicit_local_ray_is_confined(local_driver: Driver) -> None:
    info, pids = local_driver.info, _descendants(local_driver.proc.pid)
    assert set(info["workers"]) <= pids  # the tasks ran in this instance's workers
    assert info["node_ip"] == "127.0.0.1"

    listening = ss_listeners(pids)
    assert len(listening) >= MIN_LISTENING, listening
    assert [item for item in listening if not item.loopback] == []

    token = Path(info["token_file"])
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert not (local_driver.home / ".ray" / "auth_token").exists()

    root = Path(info["session_root"])
    assert token.parent == root and (root / "session_latest").is_dir()
    assert is_private(root.parent)
    assert not any(_open_to_others(folder) for folder in root.parent.parents)


def test_nothing_is_left_after_the_driver_exits(local_driver: Driver) -> None:
    pids = _descendants(local_driver.proc.pid)
    ports = {item.port for item in ss_listeners(pids)}
    assert local_driver.proc.stdin is not None
    local_driver.proc.stdin.write("done\n")
    local_driver.proc.stdin.flush()
    assert local_driver.proc.wait(EXIT_TIMEOUT_S) == 0
    deadline = time.monotonic() + EXIT_TIMEOUT_S
    while (left := {p for p in pids if _running(p)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not left, left
    assert not [item for item in ss_listeners() if item.port in ports]
    assert not Path(local_driver.info["session_root"]).exists()


REFUSED = """
import os, sys
if sys.argv[1] == "ray imported first":
    import ray
else:
    os.environ["RAY_AUTH_TOKEN_PATH"] = sys.argv[2]
from vip2clip.ops.connect import connect_ray
from vip2clip.errors import ClusterError
try:
    connect_ray(num_cpus=1)
except ClusterError as exc:
    print("refused:", exc)
    sys.exit(3)
"""


@pytest.mark.parametrize("case", ["ray imported first", "token readable by others"])
def test_an_instance_that_cannot_be_confined_is_not_started(case: str, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t" * 64)
    token.chmod(0o644)
    env = {k: v for k, v in os.environ.items() if k not in DROPPED_ENV}
    env = {k: v for k, v in env.items() if not k.startswith("RAY_ENABLE_WINDOWS")}
    env.update(HOME=str(tmp_path), PYTHONPATH=str(REPO), VIP2CLIP_RUNTIME_DIR=str(tmp_path / "rt"))
    proc = subprocess.run(
        [sys.executable, "-c", REFUSED, case, str(token)], env=env, cwd=REPO,
        capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert proc.stdout.startswith("refused:") and len(proc.stdout.splitlines()) == 1
    assert ("imported before" if case == "ray imported first" else "chmod 600") in proc.stdout
    assert "session_latest" not in str(list((tmp_path / "rt").rglob("*")))  # Ray never started
    assert list((tmp_path / "rt").iterdir()) == []  # and its folder was removed at exit
