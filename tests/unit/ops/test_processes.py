"""Finding and stopping a cluster's processes: renamed ones, stubborn ones, nobody else's."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from vip2clip.ops import processes

MARKER = ("VIP2CLIP_TEST_MARKER", uuid.uuid4().hex)  # only this run's processes carry it
GRACE_S = 1.0
# Like Ray's agents: ignores SIGTERM, and its child carries no marker either.
STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
print(child.pid, flush=True)
time.sleep(300)
"""


def _spawn(env: dict[str, str], *, new_session: bool) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-c", STUBBORN], env=env, stdout=subprocess.PIPE, text=True,
        start_new_session=new_session,
    )  # fmt: skip
    assert proc.stdout is not None
    return proc, int(proc.stdout.readline())


@pytest.fixture
def unmarked_group() -> Iterator[tuple[subprocess.Popen[str], int, processes.Groups]]:
    groups = processes.new_groups()
    env = {k: v for k, v in os.environ.items() if k != MARKER[0]}
    proc, child = _spawn(env, new_session=True)
    try:
        yield proc, child, groups.add(proc.pid)
    finally:
        for pid in (proc.pid, child):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        proc.wait(10)


def test_group_members_without_the_marker_are_found_and_stopped(
    unmarked_group: tuple[subprocess.Popen[str], int, processes.Groups],
) -> None:
    proc, child, groups = unmarked_group
    snapshot = processes.find(MARKER, groups)
    assert {proc.pid, child} <= set(snapshot)
    started = time.monotonic()
    assert processes.stop(snapshot, GRACE_S) == []  # SIGTERM ignored: SIGKILL did it
    assert time.monotonic() - started < 3 * GRACE_S + 1
    assert proc.wait(10) == -9
    assert not processes.alive({child: snapshot[child]})


def test_marked_processes_outside_the_groups_are_found() -> None:
    proc, child = _spawn({**os.environ, MARKER[0]: MARKER[1]}, new_session=False)
    try:
        assert {proc.pid, child} <= set(processes.find(MARKER, processes.new_groups()))
    finally:
        processes.stop(processes.find(MARKER, processes.Groups()), GRACE_S)
        proc.wait(10)


def test_groups_from_another_boot_or_older_processes_are_not_trusted(
    unmarked_group: tuple[subprocess.Popen[str], int, processes.Groups],
) -> None:
    proc, child, groups = unmarked_group
    assert not {proc.pid, child} & set(processes.find(MARKER, replace(groups, boot_id="other")))
    later = replace(groups, not_before=groups.not_before + 10**9)  # "started before the cluster"
    assert not {proc.pid, child} & set(processes.find(MARKER, later))


def test_a_recycled_pid_is_not_signalled() -> None:
    me = os.getpid()
    started = processes._stat(me)
    assert started is not None
    assert processes.alive({me: started[1]}) == {me}
    assert processes.alive({me: started[1] + 1}) == set()  # same pid, another process
