"""The shared real services come up and can talk to each other."""

from __future__ import annotations

import pytest

from vip2clip import storage

pytestmark = pytest.mark.integration


def test_s3_roundtrip_through_the_standard_chain(s3_server) -> None:  # type: ignore[no-untyped-def]
    bucket = s3_server.new_bucket()
    uri = f"s3://{bucket}/a/b.bin"
    storage.write_bytes(uri, b"payload")
    assert storage.read_bytes(uri) == b"payload"
    assert storage.exists(uri)


def test_ray_workers_reach_s3(ray_cluster, s3_server) -> None:  # type: ignore[no-untyped-def]
    import ray

    bucket = s3_server.new_bucket()
    storage.write_bytes(f"s3://{bucket}/x", b"from-driver")

    @ray.remote
    def read(uri: str) -> bytes:
        return storage.read_bytes(uri)

    assert ray.get(read.remote(f"s3://{bucket}/x")) == b"from-driver"
