"""``vip2clip cluster up|down|status``: a local multi-node Ray cluster for development.

``up`` starts a head and N worker nodes as separate ``ray start`` processes with
token authentication (token in a 0600 file of the state dir), a capped object
store and, by default, every service on 127.0.0.1. The cluster outlives the
command; ``down`` stops exactly the processes it started, and waits for them.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import click

from vip2clip.errors import ClusterError

STATE_DIR_ENV = "VIP2CLIP_CLUSTER_DIR"
MIB = 1024**2
DEFAULT_OBJECT_STORE_MIB = 512
ENV_FILE_NAME = "env.sh"
RAYLET_PROCESS = "raylet"


def default_state_dir() -> Path:
    """``$VIP2CLIP_CLUSTER_DIR`` or ``~/.vip2clip/cluster``."""
    configured = os.environ.get(STATE_DIR_ENV)
    return Path(configured) if configured else Path.home() / ".vip2clip" / "cluster"


STATE_DIR_OPTION = click.option(
    "--state-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help=f"Where the cluster's state and token live (default: ${STATE_DIR_ENV} "
    "or ~/.vip2clip/cluster).",
)


@click.group("cluster")
def cluster() -> None:
    """Start, stop and inspect a local multi-node Ray cluster."""


@cluster.command("up")
@click.option("--workers", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--head-cpus", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--worker-cpus", type=click.IntRange(min=1), default=1, show_default=True)
@click.option(
    "--object-store-mib",
    type=click.IntRange(min=80),
    default=DEFAULT_OBJECT_STORE_MIB,
    show_default=True,
    help="Object store cap of the head (workers get half).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind and use.")
@STATE_DIR_OPTION
def up(
    workers: int,
    head_cpus: int,
    worker_cpus: int,
    object_store_mib: int,
    host: str,
    state_dir: Path | None,
) -> None:
    """Start a head node and WORKERS worker nodes; print how to use the cluster."""
    from vip2clip.local_cluster import STATE_FILE_NAME, TOKEN_FILE_NAME, LocalCluster

    directory = state_dir or default_state_dir()
    state_file = directory / STATE_FILE_NAME
    if state_file.exists() and _attach(directory).pids():
        raise ClusterError(
            f"a local cluster is already running (state in {directory}); "
            "run `vip2clip cluster down` first"
        )
    local = LocalCluster(
        host=host,
        head_cpus=head_cpus,
        object_store_bytes=object_store_mib * MIB,
        token_file=directory / TOKEN_FILE_NAME,
    )
    local.start()
    try:
        for _ in range(workers):
            local.add_worker(num_cpus=worker_cpus)
        local.save_state(state_file)
        env_file = _write_env_file(directory, local)
    except BaseException:
        local.stop()
        raise
    click.echo(f"cluster up: head + {workers} worker(s), id {local.cluster_id}")
    click.echo(f"  Jobs API / dashboard: {local.dashboard_url}")
    click.echo(f"  GCS address (ray.init): {local.address}")
    click.echo(f"  token file (0600):    {local.token_file}")
    click.echo(f"  use it:               source {env_file}")


@cluster.command("down")
@STATE_DIR_OPTION
def down(state_dir: Path | None) -> None:
    """Stop every process of the local cluster and remove its state."""
    from vip2clip.local_cluster import STATE_FILE_NAME, TOKEN_FILE_NAME

    directory = state_dir or default_state_dir()
    if not (directory / STATE_FILE_NAME).exists():
        click.echo(f"no local cluster recorded in {directory}")
        return
    local = _attach(directory)
    count = len(local.pids())
    left = local.stop()  # SIGTERM, SIGKILL, and a bounded wait for every process
    if left:
        raise ClusterError(f"{len(left)} cluster process(es) survived SIGKILL: {left}")
    for name in (STATE_FILE_NAME, ENV_FILE_NAME, TOKEN_FILE_NAME):
        (directory / name).unlink(missing_ok=True)
    click.echo(f"cluster down: stopped {count} process(es)")


@cluster.command("status")
@STATE_DIR_OPTION
def status(state_dir: Path | None) -> None:
    """Show the local cluster's addresses, nodes and exposure; exit 1 if it is not up."""
    from vip2clip.local_cluster import STATE_FILE_NAME
    from vip2clip.ops.auth import ResolvedToken
    from vip2clip.ops.jobs_client import JobsClient
    from vip2clip.ops.loopback import exposed_listeners

    directory = state_dir or default_state_dir()
    if not (directory / STATE_FILE_NAME).exists():
        raise ClusterError(f"no local cluster recorded in {directory}: run `vip2clip cluster up`")
    local = _attach(directory)
    pids = set(local.pids())
    nodes = sum(1 for pid in pids if _process_name(pid) == RAYLET_PROCESS)
    click.echo(f"cluster {local.cluster_id}: {nodes} node(s), {len(pids)} process(es)")
    click.echo(f"  Jobs API / dashboard: {local.dashboard_url}")
    click.echo(f"  GCS address (ray.init): {local.address}")
    if not pids:
        raise ClusterError("the recorded cluster is not running: run `vip2clip cluster down`")
    jobs = JobsClient(local.dashboard_url, ResolvedToken(local.token, "the cluster's token file"))
    click.echo(f"  Jobs API: reachable, {len(jobs.list())} job(s)")
    exposed = exposed_listeners(pids)
    if exposed:
        listed = ", ".join(f"{item.process}@{item.host}:{item.port}" for item in exposed)
        click.echo(f"  listening beyond loopback: {listed}")
    else:
        click.echo("  every listening socket is on loopback")


def _attach(directory: Path):  # type: ignore[no-untyped-def]
    from vip2clip.local_cluster import STATE_FILE_NAME, LocalCluster

    return LocalCluster.from_state(directory / STATE_FILE_NAME)


def _write_env_file(directory: Path, local) -> Path:  # type: ignore[no-untyped-def]
    """Shell exports for clients: address and token *file*, never the token."""
    from vip2clip.local_cluster import RAY_LOOPBACK_ENV

    exports = {
        "RAY_ADDRESS": local.dashboard_url,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(local.token_file),
    }
    if local.loopback:
        exports[RAY_LOOPBACK_ENV] = "0"
    lines = [f"export {key}={shlex.quote(value)}" for key, value in exports.items()]
    path = directory / ENV_FILE_NAME
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
