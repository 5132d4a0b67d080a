"""Find and stop every process of a local Ray cluster (Linux ``/proc``).

A cluster's processes are found two ways, because neither is enough alone:

* a marker variable in their environment, inherited by everything a node starts
  (and by job drivers, which run in a new session). Ray's agents and dashboard
  modules rename themselves with ``setproctitle``, which overwrites the memory
  ``/proc/<pid>/environ`` shows, so the marker misses exactly those;
* the process groups of the ``ray start`` commands, each started in a new
  session: every daemon of a node stays in its group. Recorded group ids are
  trusted only within the same boot and for processes started no earlier than
  the cluster, so a recycled id cannot make ``stop`` signal a stranger.

:func:`stop` signals a snapshot (SIGTERM, then SIGKILL after a grace period) and
waits, within a bound, until none of those processes is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
BOOT_ID_FILE = PROC / "sys" / "kernel" / "random" / "boot_id"
_STAT_PGID, _STAT_START = 2, 19  # fields after the command name in /proc/<pid>/stat
POLL_S = 0.2


@dataclass(frozen=True)
class Groups:
    """Process groups of a cluster's nodes and what makes them trustworthy later."""

    ids: tuple[int, ...] = ()
    boot_id: str = ""
    not_before: int = 0  # clock ticks since boot: nothing of the cluster started earlier

    def add(self, pgid: int) -> Groups:
        """These groups plus ``pgid``."""
        return Groups((*self.ids, pgid), self.boot_id, self.not_before)


def current_boot_id() -> str:
    """This boot's id (recycled pids and group ids never cross a reboot)."""
    try:
        return BOOT_ID_FILE.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def new_groups() -> Groups:
    """An empty record, stamped with this boot and the current time."""
    return Groups((), current_boot_id(), _ticks_now())


def find(marker: tuple[str, str], groups: Groups) -> dict[int, int]:
    """``pid -> start tick`` of every process with ``NAME=VALUE`` or in ``groups``."""
    needle = f"{marker[0]}={marker[1]}".encode()
    trusted = set(groups.ids) if groups.boot_id == current_boot_id() else set()
    found: dict[int, int] = {}
    for pid in _pids():
        stat = _stat(pid)
        if stat is None:
            continue
        pgid, started = stat
        in_group = pgid in trusted and started >= groups.not_before
        if in_group or _has_env(pid, needle):
            found[pid] = started
    return found


def stop(snapshot: dict[int, int], grace_s: float) -> list[int]:
    """SIGTERM ``snapshot``, SIGKILL what is left after ``grace_s``; the pids still alive."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        _signal(alive(snapshot), sig)
        deadline = time.monotonic() + grace_s
        while alive(snapshot) and time.monotonic() < deadline:
            time.sleep(POLL_S)
    return sorted(alive(snapshot))


def alive(snapshot: dict[int, int]) -> set[int]:
    """The pids of ``snapshot`` still running as the same process (not a recycled pid)."""
    return {pid for pid, started in snapshot.items() if _started(pid) == started}


def _signal(pids: Iterable[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _pids() -> list[int]:
    me = os.getpid()
    return [int(p.name) for p in PROC.iterdir() if p.name.isdigit() and int(p.name) != me]


def _stat(pid: int) -> tuple[int, int] | None:
    """``(pgid, start tick)``; ``None`` for a gone or zombie process."""
    try:
        text = (PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()  # the command name may contain spaces
    if fields[0] == "Z":
        return None
    return int(fields[_STAT_PGID]), int(fields[_STAT_START])


def _started(pid: int) -> int | None:
    stat = _stat(pid)
    return stat[1] if stat else None


def _has_env(pid: int, needle: bytes) -> bool:
    try:
        environ = (PROC / str(pid) / "environ").read_bytes()
    except OSError:
        return False
    return needle in environ.split(b"\0")


def _ticks_now() -> int:
    uptime_s = float((PROC / "uptime").read_text(encoding="utf-8").split()[0])
    return int(uptime_s * os.sysconf("SC_CLK_TCK"))
