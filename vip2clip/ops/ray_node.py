"""``ray start`` for nodes that must stay on the loopback interface.

Ray 2.60 on Linux rewrites ``127.0.0.1`` (node IP and ``--address``) into the
machine's routable IP before starting a node, so a "local" cluster ends up
listening and advertising on the LAN. Run as ``python -m vip2clip.ops.ray_node
start ...`` this module keeps loopback addresses as given and then hands over to
Ray's own CLI. Processes the node spawns inherit
``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` (set by :mod:`vip2clip.local_cluster`),
which makes Ray's Python processes resolve "this node" to 127.0.0.1 as well.
"""

from __future__ import annotations

import sys


def _keep_loopback() -> None:
    import ray._private.ray_constants as ray_constants
    import ray._private.services as services

    from vip2clip.ops.loopback import is_loopback

    original = services.resolve_ip_for_localhost

    def resolve(host: str) -> str:
        return host if host and is_loopback(host) else original(host)

    services.resolve_ip_for_localhost = resolve
    # The node's children see the env var (loopback); this process must still be
    # allowed to start a non-head node.
    ray_constants.ENABLE_RAY_CLUSTER = True


def main(argv: list[str] | None = None) -> int:
    """Run ``ray <argv>`` with loopback addresses preserved."""
    _keep_loopback()
    from ray.scripts.scripts import main as ray_main

    sys.argv = ["ray", *(sys.argv[1:] if argv is None else argv)]
    ray_main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
