"""The one door to Ray for drivers: an explicit cluster, or a confined local instance.

``connect_ray(address)`` connects to ``address`` or ``$RAY_ADDRESS`` when one is
given. Otherwise it starts a local instance that is confined by Ray's own
settings, never by patches:

* every server on 127.0.0.1, metrics included: the node IP is ``127.0.0.1``
  (``_node_ip_address``) and ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray from
  rewriting it to the LAN address; Ray 2.60 then binds its gRPC servers, agents
  and metrics exporters to loopback. No dashboard (``include_dashboard=False``).
  Ray reads that variable when it is imported, which is why this module imports
  Ray only inside its functions and refuses to start a local instance when Ray
  was imported earlier in cluster mode;
* its temp and session folders under a 0700 per-user parent
  (:mod:`vip2clip.ops.runtime_dir`), removed when the process exits;
* token authentication with a fresh token in a 0600 file of that folder
  (``RAY_AUTH_TOKEN_PATH``), unless the caller set ``RAY_AUTH_TOKEN`` or
  ``RAY_AUTH_TOKEN_PATH`` (a token file others can read is refused); Ray never
  writes ``~/.ray/auth_token``;
* ``address="local"``: a new instance, never one found through ``/tmp/ray``.

Either way, tasks killed by Ray's memory monitor are retried a bounded number of
times (``RAY_task_oom_retries``, Ray's default retries them forever), unless the
caller set that variable.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from vip2clip.errors import ClusterError
from vip2clip.local_cluster import FIXED_PORT_ENVS, LOOPBACK, RAY_LOOPBACK_ENV, free_port, new_token
from vip2clip.ops.auth import (
    AUTH_MODE_ENV,
    AUTH_MODE_TOKEN,
    TOKEN_ENV,
    TOKEN_PATH_ENV,
    write_token_file,
)
from vip2clip.ops.loopback import is_loopback
from vip2clip.ops.runtime_dir import new_session_root

ADDRESS_ENV = "RAY_ADDRESS"
LOCAL_ADDRESS = "local"  # ray.init: start a new instance, never attach to one found on disk
SESSION_PREFIX = "ray-"
TOKEN_FILE_NAME = "auth_token"
# Ray OOM prevention docs: memory-monitor kills use their own retry budget, -1 (forever)
# by default. A read that is killed for memory every time must end the run, not loop.
TASK_OOM_RETRIES_ENV = "RAY_task_oom_retries"
TASK_OOM_RETRIES = 3
_READABLE_BY_OTHERS = 0o077


@dataclass(frozen=True)
class LocalRay:
    """Where a local instance started by :func:`connect_ray` keeps its files."""

    session_root: Path
    token_file: Path | None


def connect_ray(
    address: str | None = None,
    *,
    log_to_driver: bool = True,
    num_cpus: int | None = None,
    object_store_bytes: int | None = None,
) -> LocalRay | None:
    """Connect this process to Ray unless it already is; the local instance it started, if any.

    ``num_cpus`` and ``object_store_bytes`` size a local instance only.

    Raises:
        ClusterError: the cluster cannot be reached, or a local instance cannot be
            confined (see the module docstring).
    """
    if _ray_connected():
        return None
    os.environ.setdefault(TASK_OOM_RETRIES_ENV, str(TASK_OOM_RETRIES))
    target = address or os.environ.get(ADDRESS_ENV)
    if target and target != LOCAL_ADDRESS:
        _init(target, address=target, log_to_driver=log_to_driver)
        return None
    return start_local_ray(
        log_to_driver=log_to_driver, num_cpus=num_cpus, object_store_bytes=object_store_bytes
    )


def start_local_ray(
    *,
    log_to_driver: bool = True,
    num_cpus: int | None = None,
    object_store_bytes: int | None = None,
) -> LocalRay:
    """Start and connect to a local Ray instance confined to this machine and this user."""
    # Ray reads these when it is imported (loopback mode, auth mode, token): set them first.
    os.environ[RAY_LOOPBACK_ENV] = "0"  # inherited by Ray's processes too
    root = new_session_root(SESSION_PREFIX)
    atexit.register(_remove_session, root)
    local = LocalRay(root, _token_for_local(root))
    for name in FIXED_PORT_ENVS:  # Ray's fixed metric ports: room for several instances
        os.environ.setdefault(name, str(free_port(LOOPBACK)))
    import ray

    if not is_loopback(ray.util.get_node_ip_address()):
        raise ClusterError(
            "Ray was imported before vip2clip could keep a local instance on loopback; "
            f"set {RAY_LOOPBACK_ENV}=0 before importing ray, or give a cluster address"
        )
    _init(
        "a local instance",
        address=LOCAL_ADDRESS,
        _node_ip_address=LOOPBACK,
        _temp_dir=str(root),
        include_dashboard=False,
        num_cpus=num_cpus,
        object_store_memory=object_store_bytes,
        log_to_driver=log_to_driver,
    )
    return local


def _token_for_local(root: Path) -> Path | None:
    """The token file the local instance uses; a fresh one unless the caller chose one."""
    os.environ.setdefault(AUTH_MODE_ENV, AUTH_MODE_TOKEN)
    if os.environ.get(TOKEN_ENV):
        return None
    chosen = os.environ.get(TOKEN_PATH_ENV)
    if chosen:
        path = Path(chosen).expanduser()
        if path.is_file() and path.stat().st_mode & _READABLE_BY_OTHERS:
            raise ClusterError(f"{TOKEN_PATH_ENV}={chosen} is readable by others; chmod 600 it")
        return path
    path = write_token_file(root / TOKEN_FILE_NAME, new_token())
    os.environ[TOKEN_PATH_ENV] = str(path)
    return path


def _init(where: str, **kwargs: object) -> None:
    import ray

    try:
        ray.init(**kwargs)  # type: ignore[arg-type]
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterError(f"cannot connect to Ray at {where}: {exc}") from None


def _ray_connected() -> bool:
    ray = sys.modules.get("ray")  # not imported yet: certainly not connected
    return bool(ray is not None and ray.is_initialized())


def _remove_session(root: Path) -> None:
    """At exit: stop the local instance (it dies with this process anyway), drop its files."""
    ray = sys.modules.get("ray")
    try:
        if ray is not None:
            ray.shutdown()
    finally:  # a failed start must not leave its token and logs behind either
        shutil.rmtree(root, ignore_errors=True)
