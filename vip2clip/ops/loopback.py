"""Keep Ray's native servers off the network: a tiny ``bind()`` shim (LD_PRELOAD).

Ray 2.60's C++ gRPC servers (GCS, raylets, core workers) and a few Python
agents listen on all interfaces with no option to change it. For a local
development cluster we want loopback only, so node processes are started with a
small shared library preloaded that rewrites *wildcard* binds (``0.0.0.0``,
``::``) to loopback (``127.0.0.1``, or ``::ffff:127.0.0.1`` on dual-stack
sockets). Explicit addresses are left alone. The library is compiled on first
use with the system C compiler into the user cache; without a compiler the
cluster still starts (with a warning) and :func:`exposed_listeners` reports
what listens beyond loopback.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

PRELOAD_ENV = "LD_PRELOAD"
CACHE_ENV = "XDG_CACHE_HOME"
COMPILE_TIMEOUT_S = 60
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1", "localhost"})

SHIM_SOURCE = r"""
/* vip2clip loopback shim: wildcard bind() -> loopback. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

static const unsigned char V4_MAPPED_LOOPBACK[16] =
    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1};

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind = NULL;
    if (real_bind == NULL) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (addr != NULL && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in v4;
        memcpy(&v4, addr, sizeof v4);
        if (v4.sin_addr.s_addr == htonl(INADDR_ANY)) {
            v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&v4, sizeof v4);
        }
    } else if (addr != NULL && addr->sa_family == AF_INET6 &&
               len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 v6;
        memcpy(&v6, addr, sizeof v6);
        if (memcmp(&v6.sin6_addr, &in6addr_any, sizeof in6addr_any) == 0) {
            int v6only = 0;
            socklen_t optlen = sizeof v6only;
            getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &optlen);
            if (v6only) v6.sin6_addr = in6addr_loopback;
            else memcpy(&v6.sin6_addr, V4_MAPPED_LOOPBACK, sizeof V4_MAPPED_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&v6, sizeof v6);
        }
    }
    return real_bind(fd, addr, len);
}
"""


def is_loopback(host: str) -> bool:
    """True for 127.x.y.z, ::1, ::ffff:127.x.y.z and localhost."""
    return host in LOOPBACK_HOSTS or host.startswith(("127.", "::ffff:127."))


def shim_path() -> Path | None:
    """Path of the compiled shim (building it if needed), or ``None`` without a compiler."""
    digest = hashlib.sha256(SHIM_SOURCE.encode()).hexdigest()[:16]
    cache = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache") / "vip2clip"
    target = cache / f"loopback-bind-{digest}.so"
    if target.is_file():
        return target
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        source = Path(work) / "shim.c"
        source.write_text(SHIM_SOURCE, encoding="utf-8")
        built = Path(work) / "shim.so"
        proc = subprocess.run(
            [compiler, "-O2", "-shared", "-fPIC", "-o", str(built), str(source), "-ldl"],
            capture_output=True,
            text=True,
            timeout=COMPILE_TIMEOUT_S,
            check=False,
        )
        if proc.returncode != 0:
            return None
        built.replace(target)  # atomic: concurrent builders all end with one good file
    return target


def preload_env(library: Path, environ: dict[str, str]) -> dict[str, str]:
    """``environ`` with ``library`` added in front of ``LD_PRELOAD``."""
    current = environ.get(PRELOAD_ENV, "")
    entries = [str(library), *(p for p in current.split(":") if p and p != str(library))]
    return {**environ, PRELOAD_ENV: ":".join(entries)}


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
