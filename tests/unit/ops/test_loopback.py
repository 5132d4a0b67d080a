"""The bind shim turns wildcard listens into loopback ones, and /proc parsing finds them."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from vip2clip.ops.loopback import exposed_listeners, preload_env, shim_path, tcp_listeners

PROBE = """
import socket, sys
family = socket.AF_INET6 if sys.argv[1] == "6" else socket.AF_INET
sock = socket.socket(family, socket.SOCK_STREAM)
sock.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", 0))
print(sock.getsockname()[0])
"""


@pytest.fixture(scope="module")
def shim() -> str:
    path = shim_path()
    if path is None:
        pytest.skip("no C compiler on this machine")
    return str(path)


@pytest.mark.parametrize(("family", "expected"), [("4", "127.0.0.1"), ("6", "::ffff:127.0.0.1")])
def test_wildcard_bind_becomes_loopback(shim: str, family: str, expected: str) -> None:
    env = preload_env(__import__("pathlib").Path(shim), dict(os.environ))
    out = subprocess.run(
        [sys.executable, "-c", PROBE, family], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == expected


def test_without_the_shim_the_bind_is_wildcard() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, "4"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "0.0.0.0"


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


def test_preload_env_prepends_once() -> None:
    from pathlib import Path

    env = preload_env(Path("/x/shim.so"), {"LD_PRELOAD": "/y/other.so:/x/shim.so"})
    assert env["LD_PRELOAD"] == "/x/shim.so:/y/other.so"
