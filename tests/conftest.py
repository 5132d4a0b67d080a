"""Shared test setup: offline mode, Ray token auth, and the real services tests start.

The auth environment is set here, before anything imports Ray, because the Ray
driver reads it once per process.
"""

from __future__ import annotations

import os
import secrets
import tempfile

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The embedded catalog of every test lives in a fresh folder, never in the user's home.
os.environ["VIP2CLIP_HOME"] = tempfile.mkdtemp(prefix="vip2clip-test-home-")
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
