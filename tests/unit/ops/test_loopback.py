"""/proc parsing finds a process's listening sockets and tells loopback from exposed."""

from __future__ import annotations

import os
import socket

from vip2clip.ops.loopback import exposed_listeners, is_loopback, tcp_listeners


def test_listeners_of_this_process_are_found_and_classified() -> None:
    with socket.socket() as local, socket.socket() as wide:
        local.bind(("127.0.0.1", 0))
        local.listen()
        wide.bind(("0.0.0.0", 0))
        wide.listen()
        found = {(item.host, item.port) for item in tcp_listeners({os.getpid()})}
        assert ("127.0.0.1", local.getsockname()[1]) in found
        assert ("0.0.0.0", wide.getsockname()[1]) in found
        exposed = {item.port for item in exposed_listeners({os.getpid()})}
        assert exposed == {wide.getsockname()[1]}


def test_loopback_addresses() -> None:
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "10.0.0.1", "*"]))
