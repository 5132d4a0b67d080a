"""Start and stop a local multi-node Ray cluster with token authentication.

Used by ``vip2clip cluster up``, the offline demo and the tests. Every node is a
separate ``ray start`` process tree (head and workers) sharing one auth token;
all services bind to 127.0.0.1 unless told otherwise, and the object store is
capped so the cluster fits a small machine.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from vip2clip.errors import ClusterError

DEFAULT_OBJECT_STORE_BYTES = 512 * 1024**2
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def cluster_pids(token: str) -> list[int]:
    """PIDs of the processes whose environment carries ``RAY_AUTH_TOKEN=token``."""
    needle = f"RAY_AUTH_TOKEN={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def new_token() -> str:
    """A fresh random cluster token (hex, 64 characters)."""
    return secrets.token_hex(32)


@dataclass
class LocalCluster:
    """A local Ray cluster of separate node processes.

    ``env`` holds what every process talking to the cluster needs (auth mode and
    token); :meth:`client_env` merges it into a copy of the current environment.
    """

    token: str = field(default_factory=new_token)
    host: str = "127.0.0.1"
    head_cpus: int = 2
    object_store_bytes: int = DEFAULT_OBJECT_STORE_BYTES
    temp_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    gcs_port: int = 0
    dashboard_port: int = 0
    _nodes: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        """GCS address (``host:port``) for ``ray.init`` and ``ray start --address``."""
        return f"{self.host}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        """HTTP address of the dashboard and Jobs API."""
        return f"http://{self.host}:{self.dashboard_port}"

    @property
    def env(self) -> dict[str, str]:
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": self.token, **self.extra_env}

    def client_env(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def start(self) -> LocalCluster:
        """Start the head node and wait until it accepts connections."""
        if self.temp_dir is None:
            # Ray's socket paths must stay short: keep the session dir near /tmp.
            self.temp_dir = Path(tempfile.mkdtemp(prefix="v2c-ray-", dir="/tmp"))
        self.gcs_port = self.gcs_port or _free_port(self.host)
        self.dashboard_port = self.dashboard_port or _free_port(self.host)
        self._ray(
            "start",
            "--head",
            f"--node-ip-address={self.host}",
            f"--port={self.gcs_port}",
            f"--dashboard-host={self.host}",
            f"--dashboard-port={self.dashboard_port}",
            f"--num-cpus={self.head_cpus}",
            f"--object-store-memory={self.object_store_bytes}",
            f"--temp-dir={self.temp_dir}",
            "--include-dashboard=true",
            "--disable-usage-stats",
        )
        self._wait_for_dashboard()
        return self

    def add_worker(self, num_cpus: int = 1, resources: str | None = None) -> None:
        """Start one more node (a separate raylet) joined to the head."""
        args = [
            "start",
            f"--address={self.address}",
            f"--node-ip-address={self.host}",
            f"--num-cpus={num_cpus}",
            f"--object-store-memory={self.object_store_bytes // 2}",
            "--disable-usage-stats",
        ]
        if resources:
            args.append(f"--resources={resources}")
        self._ray(*args)

    def stop(self) -> None:
        """Stop every process of this cluster and remove its session directory.

        Processes are found by the cluster's token in their environment, so
        other Ray clusters on the same machine are left alone (``ray stop``
        would kill them all).
        """
        for pid in cluster_pids(self.token):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _ray(self, *args: str) -> None:
        ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
        proc = subprocess.run(
            [ray_bin, *args],
            env=self.client_env(),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
            raise ClusterError(f"`ray {args[0]}` failed: {' | '.join(tail)}")

    def _wait_for_dashboard(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex((self.host, self.dashboard_port)) == 0:
                    return
            time.sleep(0.3)
        raise ClusterError(f"Ray dashboard did not come up on {self.dashboard_url}")
