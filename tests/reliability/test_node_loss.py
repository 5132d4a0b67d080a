"""Node loss during scoring: a worker node's raylet is SIGKILLed mid-run.

A three-node local cluster (head with no CPUs, so every task and actor runs on
the two worker nodes) scores a local archive into an Iceberg table, committing a
snapshot every few rows; once the run's first snapshot is committed, the raylet
of a node hosting an inference actor is killed (that node only, found by its
worker processes' parent; if the pipeline's counter actor lives on one of those
nodes, that one). The run must still end with one row per object in the table:
work Ray re-executes after the loss is neither committed twice nor counted twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.iceberg import IcebergCatalog
from tests.reliability.helpers import (
    assert_exactly_once,
    cmdline,
    committed_rows,
    driver_env,
    finish,
    json_summary,
    kill_group,
    parent_pid,
    run_snapshots,
    score_command,
    start_driver,
    tail,
    wait_until,
    write_images,
)
from vip2clip.local_cluster import LocalCluster, new_token

pytestmark = pytest.mark.integration

N_IMAGES = 96
# 3, not 2: after the loss the surviving node must fit both inference actors AND the CPU
# tasks. With 2, the restarted actor takes the last CPU and the fixed-size pool starves
# the read/decode/write tasks forever (a real deadlock, seen with Ray 2.60; see
# docs/operations.md, "A worker node dies during scoring").
WORKER_CPUS = 3
COMMIT_EVERY = 8  # rows per snapshot: the kill comes after the first one, early in the run
RUN_ID = "node-loss"
INFERENCE_ACTOR_TITLE = "InferenceWorker"
# The pipeline's run-wide counter actor: losing its node is the worst case, so when it
# shares a worker node with an inference actor, that node is the one killed.
COUNTER_ACTOR_TITLE = "RunCounter"


@pytest.fixture(scope="module")
def three_nodes(s3_server: Any) -> Iterator[LocalCluster]:
    """Head (0 CPUs) + 2 worker nodes, each a separate ``ray start`` raylet."""
    cluster = LocalCluster(token=new_token(), head_cpus=0, extra_env=dict(s3_server.env))
    cluster.start()
    try:
        for _ in range(2):
            cluster.add_worker(num_cpus=WORKER_CPUS)
        yield cluster
    finally:
        cluster.stop()


def _raylets_hosting(cluster: LocalCluster, title: str) -> set[int]:
    """Raylet PIDs (parents) of this cluster's worker processes whose title has ``title``."""
    hosts = set()
    for pid in cluster.pids():
        argv = cmdline(pid)
        if argv and argv[0].startswith("ray::") and title in " ".join(argv):
            parent = parent_pid(pid)
            if parent is not None and "raylet" in " ".join(cmdline(parent)):
                hosts.add(parent)
    return hosts


def _head_raylet(cluster: LocalCluster) -> int:
    """The head's raylet (started with ``--head``)."""
    for pid in cluster.pids():
        argv = cmdline(pid)
        if argv and argv[0].endswith("/raylet") and "--head" in argv:
            return pid
    raise AssertionError("the head raylet was not found")


def _cluster_logs(cluster: LocalCluster, lines: int = 15) -> str:
    """Tails of the GCS and raylet error logs (the session folder is gone after stop)."""
    logs = Path(str(cluster.temp_dir)) / "session_latest" / "logs"
    parts = []
    for name in ("gcs_server.err", "gcs_server.out", "raylet.err"):
        path = logs / name
        if path.is_file():
            tail_lines = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {name}\n" + "\n".join(tail_lines))
    return "\n".join(parts)


def test_scoring_survives_losing_a_worker_node(
    three_nodes: LocalCluster, local_catalog: IcebergCatalog, tmp_path: Path
) -> None:
    try:
        _lose_a_node_while_scoring(three_nodes, local_catalog, tmp_path)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{_cluster_logs(three_nodes)}") from None


def _lose_a_node_while_scoring(
    three_nodes: LocalCluster, catalog: IcebergCatalog, tmp_path: Path
) -> None:
    inputs = set(write_images(tmp_path / "archive", N_IMAGES))
    log = tmp_path / "driver.log"
    command = score_command(
        str(tmp_path / "archive"), catalog, RUN_ID, three_nodes.address,
        "--num-actors", "2", "--commit-every", str(COMMIT_EVERY), "--json",
    )  # fmt: skip
    proc = start_driver(command, driver_env(three_nodes.client_env(), catalog), log)
    try:
        _kill_a_node_midway(three_nodes, catalog, proc, log)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert_exactly_once(catalog, RUN_ID, inputs)
    # Run-wide counts must not double-count work Ray re-executed after the loss.
    summary = json_summary(log)
    assert (summary["listed"], summary["ok"], summary["errors"]) == (N_IMAGES, N_IMAGES, 0)
    assert committed_rows(catalog, RUN_ID) == N_IMAGES  # snapshot summaries agree


def _kill_a_node_midway(
    three_nodes: LocalCluster,
    catalog: IcebergCatalog,
    proc: subprocess.Popen[bytes],
    log: Path,
) -> None:
    victims: set[int] = set()

    def ready() -> bool:
        victims.update(_raylets_hosting(three_nodes, INFERENCE_ACTOR_TITLE))
        return bool(run_snapshots(catalog, RUN_ID)) and bool(victims)

    wait_until(ready, proc, log)
    worst = victims & _raylets_hosting(three_nodes, COUNTER_ACTOR_TITLE)
    victim = min(worst or victims)
    assert victim != _head_raylet(three_nodes)
    rows_at_kill = committed_rows(catalog, RUN_ID)
    os.kill(victim, signal.SIGKILL)
    assert proc.poll() is None, "the run ended before the node was lost"
    assert finish(proc, log) == 0, tail(log)
    assert rows_at_kill < N_IMAGES / 2, "the kill came too late to matter"
