"""Node loss during scoring: a worker node's raylet is SIGKILLed mid-run.

A three-node local cluster (head with no CPUs, so every task and actor runs on
the two worker nodes) scores a local archive; once a few files are staged, the
raylet of a node hosting an inference actor is killed (that node only, found by
its worker processes' parent; if the pipeline's counter actor lives on one of
those nodes, that one). The run must still commit every input exactly
once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.helpers import (
    assert_exactly_once,
    cmdline,
    finish,
    kill_group,
    parent_pid,
    score_command,
    staged_parquet,
    staged_rows,
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
STAGED_BEFORE_KILL = 3
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


def test_scoring_survives_losing_a_worker_node(three_nodes: LocalCluster, tmp_path: Path) -> None:
    try:
        _lose_a_node_while_scoring(three_nodes, tmp_path)
    except AssertionError as failure:
        raise AssertionError(f"{failure}\n{_cluster_logs(three_nodes)}") from None


def _lose_a_node_while_scoring(three_nodes: LocalCluster, tmp_path: Path) -> None:
    inputs = set(write_images(tmp_path / "archive", N_IMAGES))
    output = tmp_path / "results"
    log = tmp_path / "driver.log"
    command = score_command(
        str(tmp_path / "archive"), str(output), "node-loss", three_nodes.address,
        "--num-actors", "2", "--json",
    )  # fmt: skip
    proc = start_driver(command, three_nodes.client_env(), log)
    try:
        _kill_a_node_midway(three_nodes, proc, output, log)
    finally:
        if proc.poll() is None:
            kill_group(proc)
    assert_exactly_once(str(output), "node-loss", inputs)
    # Run-wide counts must not double-count work Ray re-executed after the loss.
    summary = _summary(log)
    assert (summary["listed"], summary["ok"], summary["errors"]) == (N_IMAGES, N_IMAGES, 0)


def _kill_a_node_midway(
    three_nodes: LocalCluster, proc: subprocess.Popen[bytes], output: Path, log: Path
) -> None:
    victims: set[int] = set()

    def ready() -> bool:
        victims.update(_raylets_hosting(three_nodes, INFERENCE_ACTOR_TITLE))
        return staged_parquet(output) >= STAGED_BEFORE_KILL and bool(victims)

    wait_until(ready, proc, log)
    worst = victims & _raylets_hosting(three_nodes, COUNTER_ACTOR_TITLE)
    victim = min(worst or victims)
    assert victim != _head_raylet(three_nodes)
    rows_at_kill = staged_rows(output)
    os.kill(victim, signal.SIGKILL)
    assert proc.poll() is None, "the run ended before the node was lost"
    assert finish(proc, log) == 0, tail(log)
    assert rows_at_kill < N_IMAGES / 2, "the kill came too late to matter"


def _summary(log: Path) -> dict[str, Any]:
    """The ``--json`` run summary the driver printed (one JSON line)."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{") and '"run_id"' in line:
            found: dict[str, Any] = json.loads(line)
            return found
    raise AssertionError(f"no JSON summary in the driver log:\n{tail(log)}")
