"""Shared pieces of the reliability tests: small archives, the scoring job as a
subprocess driver, polling the results table's snapshots, and process lookup on
a local cluster.

Everything here drives the real system (``jobs/score.py`` against a real Ray
cluster); nothing is mocked.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from tests.fixtures.iceberg import TABLE, IcebergCatalog
from vip2clip.errors import StorageError
from vip2clip.model import BackboneSpec, DetectorConfig
from vip2clip.results import SnapshotInfo

REPO = Path(__file__).resolve().parents[2]
SIZE = 112  # native size of the tiny backbone: cheapest inference
DETECTOR = DetectorConfig(backbone=BackboneSpec.tiny(), image_size=SIZE)
RUN_DATE = "2026-11-25"
POLL_S = 0.1
JOB_TIMEOUT_S = 420.0  # generous: CI shares 2 cores with other suites


def image_bytes(rng: np.random.Generator, i: int) -> bytes:
    """A small random PNG or JPEG (alternating), 48..79 px per side."""
    height, width = 48 + (i * 7) % 32, 48 + (i * 13) % 32
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG" if i % 2 else "PNG")
    return buffer.getvalue()


def write_images(root: Path, count: int, seed: int = 0) -> list[str]:
    """``count`` images under ``root`` (two sub-folders); returns their paths."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        path = root / f"cam-{i % 2}" / f"img-{i:04d}.{'jpg' if i % 2 else 'png'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes(rng, i))
        paths.append(str(path))
    return paths


def score_command(
    source: str,
    catalog: IcebergCatalog,
    run_id: str,
    address: str,
    *extra: str,
    full: bool = True,
    table: str = TABLE,
) -> list[str]:
    """``python jobs/score.py SOURCE TABLE`` with small batches and files, so a run
    spans many data files (add ``--commit-every N`` for many snapshots)."""
    return [
        sys.executable, str(REPO / "jobs" / "score.py"), source, table,
        "--catalog", catalog.name,
        "--full" if full else "--incremental", "--run-id", run_id, "--run-date", RUN_DATE,
        "--no-progress", "--ray-address", address, "--batch-size", "2",
        "--set", "rows_per_file=4", "--set", "read_batch_size=4",
        "--set", f"detector={DETECTOR.model_dump_json()}", *extra,
    ]  # fmt: skip


def driver_env(cluster_env: dict[str, str], catalog: IcebergCatalog) -> dict[str, str]:
    """A subprocess driver's environment: the cluster's client settings and the catalog."""
    return {**cluster_env, **catalog.env}


def start_driver(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a scoring driver in its own session, output to ``log``."""
    with log.open("wb") as sink:
        return subprocess.Popen(
            command,
            env={**env, "PYTHONPATH": str(REPO)},
            cwd=REPO,
            start_new_session=True,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def wait_until(
    condition: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    log: Path,
    timeout_s: float = JOB_TIMEOUT_S,
) -> None:
    """Poll ``condition`` while the driver runs; fail with its log if it exits first."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert proc.poll() is None, f"driver ended early:\n{tail(log)}"
        assert time.monotonic() < deadline, f"condition not reached in time:\n{tail(log)}"
        time.sleep(POLL_S)


def finish(proc: subprocess.Popen[bytes], log: Path, timeout_s: float = JOB_TIMEOUT_S) -> int:
    """Wait for the driver; kill its process group on timeout and fail."""
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        raise AssertionError(f"driver did not finish in {timeout_s} s:\n{tail(log)}") from None


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the driver's whole process group (it was started in its own session)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def tail(log: Path, lines: int = 40) -> str:
    """The last lines of a driver log."""
    if not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def run_snapshots(catalog: IcebergCatalog, run_id: str, table: str = TABLE) -> list[SnapshotInfo]:
    """Snapshots of ``run_id`` committed so far, oldest first (none before the table exists)."""
    try:
        snapshots = catalog.results(table).snapshots()
    except StorageError:
        return []  # the driver has not created the table yet
    return [s for s in snapshots if s.run_id == run_id]


def committed_rows(catalog: IcebergCatalog, run_id: str, table: str = TABLE) -> int:
    """Rows of ``run_id`` in the snapshots committed so far (from snapshot summaries)."""
    return sum(s.added_rows for s in run_snapshots(catalog, run_id, table))


def json_summary(log: Path) -> dict[str, Any]:
    """The ``--json`` run summary a driver printed (its last JSON line)."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{") and '"run_id"' in line:
            found: dict[str, Any] = json.loads(line)
            return found
    raise AssertionError(f"no JSON summary in the driver log:\n{tail(log)}")


def cmdline(pid: int) -> list[str]:
    """A process's argv (empty when it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def parent_pid(pid: int) -> int | None:
    """The parent of ``pid`` (from /proc/<pid>/stat), or None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def assert_exactly_once(
    catalog: IcebergCatalog, run_id: str, inputs: set[str], table: str = TABLE
) -> list[dict[str, Any]]:
    """The committed rows of ``run_id`` name every input exactly once, nothing else;
    returns them."""
    rows = catalog.rows(run_id, table)
    uris = [row["source_uri"] for row in rows]
    duplicates = {u for u in uris if uris.count(u) > 1}
    assert not duplicates, f"duplicated rows: {sorted(duplicates)[:5]}"
    assert set(uris) == inputs, (
        f"missing {sorted(inputs - set(uris))[:5]}, unexpected {sorted(set(uris) - inputs)[:5]}"
    )
    return rows
