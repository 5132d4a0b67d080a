"""Start and stop a local multi-node Ray cluster with token authentication.

Used by ``vip2clip cluster up``, the offline demo and the tests. Every node is a
separate ``ray start`` process tree (head and workers) sharing one auth token,
which the nodes read from a 0600 file (``RAY_AUTH_TOKEN_PATH``) rather than from
their environment. The object store is capped so the cluster fits a small
machine, and with ``host="127.0.0.1"`` (the default) nothing listens beyond
loopback: Ray's address rewriting is switched off (:mod:`vip2clip.ops.ray_node`),
and with its node IP on loopback Ray binds every server there.

Its session folder lives under a 0700 per-user parent (:mod:`vip2clip.ops.runtime_dir`).
Each node is started in a new process session; processes are found by a cluster
id in their environment and by those recorded process groups
(:mod:`vip2clip.ops.processes`), so stopping one cluster ends all of it, Ray's
renamed agents included, and never touches another one on the same machine
(``ray stop`` would).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vip2clip.errors import ClusterError
from vip2clip.ops import processes
from vip2clip.ops.auth import AUTH_MODE_ENV, TOKEN_ENV, TOKEN_PATH_ENV, write_token_file
from vip2clip.ops.loopback import is_loopback
from vip2clip.ops.runtime_dir import new_session_root

DEFAULT_OBJECT_STORE_BYTES = 512 * 1024**2
AUTH_ENV = ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")
CLUSTER_ID_ENV = "VIP2CLIP_CLUSTER_ID"
# Ray reads this once per process; "0" makes Ray's Python side treat 127.0.0.1 as
# this node's address instead of rewriting it to the LAN IP (see ray_constants).
RAY_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = "127.0.0.1"
RAY_START_TIMEOUT_S = 180
DASHBOARD_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0  # per signal: SIGTERM, then SIGKILL (Ray's agents ignore SIGTERM)
POLL_S = 0.2
SESSION_PREFIX = "v2c-ray-"
TOKEN_FILE_NAME = "auth_token"
STATE_FILE_NAME = "cluster.json"
# Ray listens on these fixed default ports (dashboard/autoscaler metrics: env vars;
# node agent: a flag); several clusters on one machine need their own.
FIXED_PORT_ENVS = ("DASHBOARD_METRIC_PORT", "AUTOSCALER_METRIC_PORT")
# Variables of the caller that must not leak into node processes.
NODE_ENV_DROP = (TOKEN_ENV, TOKEN_PATH_ENV, "RAY_ADDRESS", RAY_LOOPBACK_ENV)


def free_port(host: str) -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def cluster_id_for(token: str) -> str:
    """Stable, non-secret id of the cluster that uses ``token`` (a hash prefix)."""
    return hashlib.sha256(f"vip2clip-cluster:{token}".encode()).hexdigest()[:24]


def pids_with_env(name: str, value: str) -> list[int]:
    """PIDs (other than this one) whose environment has ``name=value``."""
    needle = f"{name}={value}".encode()
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


def cluster_pids(token: str) -> list[int]:
    """PIDs of the node processes of the local cluster started with ``token``."""
    return pids_with_env(CLUSTER_ID_ENV, cluster_id_for(token))


def new_token() -> str:
    """A fresh random cluster token (hex, 64 characters)."""
    return secrets.token_hex(32)


@dataclass
class LocalCluster:
    """A local Ray cluster of separate node processes.

    ``env`` holds what every process talking to the cluster needs (auth mode and
    token, loopback mode, ``extra_env``); :meth:`client_env` merges it into a copy
    of the current environment. Node processes get :meth:`node_env` instead,
    which names the token file rather than carrying the token.
    """

    token: str = field(default_factory=new_token, repr=False)
    host: str = LOOPBACK
    head_cpus: int = 2
    object_store_bytes: int = DEFAULT_OBJECT_STORE_BYTES
    temp_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    gcs_port: int = 0
    dashboard_port: int = 0
    token_file: Path | None = None
    client_server_port: int = 0
    workers: int = 0
    metric_ports: dict[str, int] = field(default_factory=dict)
    groups: processes.Groups = field(default_factory=processes.new_groups)

    @property
    def cluster_id(self) -> str:
        """Non-secret id carried in every node process's environment."""
        return cluster_id_for(self.token)

    @property
    def address(self) -> str:
        """GCS address (``host:port``) for ``ray.init`` and ``ray start --address``."""
        return f"{self.host}:{self.gcs_port}"

    @property
    def dashboard_url(self) -> str:
        """HTTP address of the dashboard and Jobs API."""
        return f"http://{self.host}:{self.dashboard_port}"

    @property
    def loopback(self) -> bool:
        """Whether the cluster is confined to the loopback interface."""
        return is_loopback(self.host)

    @property
    def env(self) -> dict[str, str]:
        """Environment a client (driver, CLI) of this cluster needs."""
        loopback = {RAY_LOOPBACK_ENV: "0"} if self.loopback else {}
        return {AUTH_MODE_ENV: "token", TOKEN_ENV: self.token, **loopback, **self.extra_env}

    def client_env(self) -> dict[str, str]:
        """A copy of this process's environment plus :attr:`env`."""
        return {**os.environ, **self.env}

    def node_env(self) -> dict[str, str]:
        """Environment of the node processes: token by file, cluster id, loopback mode."""
        base = {k: v for k, v in os.environ.items() if k not in NODE_ENV_DROP}
        env = {
            **base,
            **{k: v for k, v in self.extra_env.items() if k not in NODE_ENV_DROP},
            AUTH_MODE_ENV: "token",
            TOKEN_PATH_ENV: str(self._token_path()),
            CLUSTER_ID_ENV: self.cluster_id,
            **{name: str(port) for name, port in self.metric_ports.items()},
            # Job entrypoints say `python ...`: make that this interpreter (its venv),
            # whether or not the caller activated it.
            "PATH": os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")]),
        }
        if self.loopback:
            env[RAY_LOOPBACK_ENV] = "0"
        return env

    def start(self) -> LocalCluster:
        """Start the head node and wait until its dashboard accepts connections."""
        if self.temp_dir is None:
            self.temp_dir = new_session_root(SESSION_PREFIX)
        write_token_file(self._token_path(), self.token)
        self.gcs_port = self.gcs_port or free_port(self.host)
        self.dashboard_port = self.dashboard_port or free_port(self.host)
        self.client_server_port = self.client_server_port or free_port(self.host)
        for name in FIXED_PORT_ENVS:
            self.metric_ports.setdefault(name, free_port(self.host))
        try:
            self._ray(
                "start",
                "--head",
                f"--node-ip-address={self.host}",
                f"--port={self.gcs_port}",
                f"--dashboard-host={self.host}",
                f"--dashboard-port={self.dashboard_port}",
                f"--ray-client-server-port={self.client_server_port}",
                f"--dashboard-agent-listen-port={free_port(self.host)}",
                f"--num-cpus={self.head_cpus}",
                f"--object-store-memory={self.object_store_bytes}",
                f"--temp-dir={self.temp_dir}",
                "--include-dashboard=true",
                "--disable-usage-stats",
            )
            self._wait_for_dashboard()
        except BaseException:
            self.stop()
            raise
        return self

    def add_worker(self, num_cpus: int = 1, resources: str | None = None) -> None:
        """Start one more node (a separate raylet) joined to the head."""
        args = [
            "start",
            f"--address={self.address}",
            f"--node-ip-address={self.host}",
            f"--num-cpus={num_cpus}",
            f"--object-store-memory={self.object_store_bytes // 2}",
            f"--dashboard-agent-listen-port={free_port(self.host)}",
            "--disable-usage-stats",
        ]
        if resources:
            args.append(f"--resources={resources}")
        self._ray(*args)
        self.workers += 1

    def connect(self, **init_kwargs: Any) -> None:
        """``ray.init`` this process as a driver of the cluster.

        A loopback cluster needs its drivers in loopback mode too; Ray reads that
        setting once, at import, so it is also applied to an already imported Ray.
        """
        os.environ.update(self.env)
        import ray

        if self.loopback:
            import ray._private.ray_constants as ray_constants

            ray_constants.ENABLE_RAY_CLUSTER = False
        ray.init(address=self.address, **init_kwargs)

    def pids(self) -> list[int]:
        """PIDs of every process of this cluster still alive."""
        return sorted(processes.find((CLUSTER_ID_ENV, self.cluster_id), self.groups))

    def stop(self) -> list[int]:
        """Stop every process of this cluster and remove its session directory.

        Processes get SIGTERM, then SIGKILL after a grace period, and are waited
        for (within a bound). Returns the pids that survived even that.
        """
        snapshot = processes.find((CLUSTER_ID_ENV, self.cluster_id), self.groups)
        survivors = processes.stop(snapshot, STOP_GRACE_S)
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
        return survivors

    def state(self) -> dict[str, Any]:
        """What ``cluster down/status`` need later (no secret: the token stays in its file)."""
        return {
            "cluster_id": self.cluster_id,
            "host": self.host,
            "gcs_port": self.gcs_port,
            "dashboard_port": self.dashboard_port,
            "client_server_port": self.client_server_port,
            "temp_dir": str(self.temp_dir) if self.temp_dir else None,
            "token_file": str(self._token_path()),
            "object_store_bytes": self.object_store_bytes,
            "head_cpus": self.head_cpus,
            "workers": self.workers,
            "metric_ports": self.metric_ports,
            "process_groups": list(self.groups.ids),
            "boot_id": self.groups.boot_id,
            "not_before_ticks": self.groups.not_before,
        }

    def save_state(self, path: Path) -> Path:
        """Write :meth:`state` as JSON to ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.state(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_state(cls, path: Path) -> LocalCluster:
        """Re-attach to a cluster described by :meth:`save_state` (token read from its file)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            token_file = Path(data["token_file"])
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, ValueError, KeyError) as exc:
            raise ClusterError(f"no usable local cluster state at {path} ({exc})") from None
        temp_dir = data.get("temp_dir")
        return cls(
            token=token,
            host=data["host"],
            head_cpus=data["head_cpus"],
            object_store_bytes=data["object_store_bytes"],
            temp_dir=Path(temp_dir) if temp_dir else None,
            gcs_port=data["gcs_port"],
            dashboard_port=data["dashboard_port"],
            token_file=token_file,
            client_server_port=data["client_server_port"],
            workers=data["workers"],
            metric_ports=data.get("metric_ports", {}),
            groups=processes.Groups(
                tuple(data.get("process_groups", ())),
                data.get("boot_id", ""),
                data.get("not_before_ticks", 0),
            ),
        )

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _token_path(self) -> Path:
        if self.token_file is not None:
            return self.token_file
        if self.temp_dir is None:
            raise ClusterError("the cluster has no session directory yet: call start() first")
        return self.temp_dir / TOKEN_FILE_NAME

    def _ray(self, *args: str) -> None:
        if self.loopback:
            command = [sys.executable, "-m", "vip2clip.ops.ray_node", *args]
        else:
            ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
            command = [ray_bin, *args]
        # A new session per node: its daemons stay in this process group (recorded
        # for stop()), apart from the caller's group and terminal.
        proc = subprocess.Popen(
            command,
            env=self.node_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.groups = self.groups.add(proc.pid)
        try:
            stdout, stderr = proc.communicate(timeout=RAY_START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, stderr = proc.communicate()
        if proc.returncode != 0:
            tail = (stderr or stdout).strip().splitlines()[-5:]
            raise ClusterError(f"`ray {args[0]}` failed: {' | '.join(tail)}")

    def _wait_for_dashboard(self, timeout_s: float = DASHBOARD_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex((self.host, self.dashboard_port)) == 0:
                    return
            time.sleep(POLL_S)
        raise ClusterError(f"Ray dashboard did not come up on {self.dashboard_url}")
