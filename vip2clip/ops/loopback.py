"""Which TCP sockets a set of processes listens on, and whether beyond loopback.

Read from ``/proc`` (Linux only), so ``cluster status`` and the tests can check
what a Ray cluster exposes. Ray 2.60 binds its servers (GCS, raylets, core
workers, agents, metrics exporters) to loopback when the node's IP is
``127.0.0.1``; :mod:`vip2clip.local_cluster` and :mod:`vip2clip.ops.connect`
see to that, and this module checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1", "localhost"})


def is_loopback(host: str) -> bool:
    """True for 127.x.y.z, ::1, ::ffff:127.x.y.z and localhost."""
    return host in LOOPBACK_HOSTS or host.startswith(("127.", "::ffff:127."))


@dataclass(frozen=True)
class Listener:
    """One listening TCP socket of a process."""

    pid: int
    host: str
    port: int
    process: str

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


def tcp_listeners(pids: set[int]) -> list[Listener]:
    """Listening TCP sockets owned by ``pids`` (from ``/proc``; Linux only)."""
    inodes = _socket_inodes(pids)
    found = []
    for table, family in (("tcp", 4), ("tcp6", 6)):
        for inode, host, port in _listening(Path("/proc/net") / table, family):
            if inode in inodes:
                pid = inodes[inode]
                found.append(Listener(pid, host, port, _process_name(pid)))
    return found


def exposed_listeners(pids: set[int]) -> list[Listener]:
    """Listening sockets of ``pids`` that are reachable beyond loopback."""
    return [listener for listener in tcp_listeners(pids) if not listener.loopback]


_TCP_LISTEN = "0A"


def _listening(table: Path, family: int) -> list[tuple[int, str, int]]:
    try:
        lines = table.read_text().splitlines()[1:]
    except OSError:
        return []
    rows = []
    for line in lines:
        fields = line.split()
        if len(fields) < 10 or fields[3] != _TCP_LISTEN:
            continue
        address, port = fields[1].split(":")
        rows.append((int(fields[9]), _decode_address(address, family), int(port, 16)))
    return rows


def _decode_address(hex_address: str, family: int) -> str:
    import ipaddress

    raw = bytes.fromhex(hex_address)
    # /proc/net/tcp* stores each 32-bit word in host (little-endian) order
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(words) if family == 4 else ipaddress.IPv6Address(words)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"
    return str(ip)


def _socket_inodes(pids: set[int]) -> dict[int, int]:
    inodes: dict[int, int] = {}
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = str(fd.readlink())
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes[int(target[len("socket:[") : -1])] = pid
    return inodes


def _process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"
