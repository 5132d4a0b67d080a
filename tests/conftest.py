"""Shared test setup: offline mode, Ray token auth, and the real services tests start.

The auth environment is set here, before anything imports Ray, because the Ray
driver reads it once per process.
"""

from __future__ import annotations

import os
import secrets

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ["RAY_AUTH_MODE"] = "token"
os.environ.setdefault("RAY_AUTH_TOKEN", secrets.token_hex(32))

pytest_plugins = [
    "tests.fixtures.s3",
    "tests.fixtures.ray_cluster",
    "tests.fixtures.bad_inputs",
    "tests.fixtures.prometheus",
    "tests.fixtures.datasets",
    "tests.fixtures.flaky_proxy",
    "tests.fixtures.iceberg",
    "tests.fixtures.postgres",
]
