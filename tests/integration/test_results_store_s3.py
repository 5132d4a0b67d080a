"""ResultsStore on a real S3 endpoint (moto server): the commit protocol without renames."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator

import polars as pl
import pyarrow.dataset as ds
import pytest

from tests.fixtures.s3 import S3Server
from tests.unit.results.helpers import result_rows, stage, uris
from vip2clip.results import ResultsStore, decode_mask
from vip2clip.storage import pyarrow_filesystem

pytestmark = pytest.mark.integration

DAY = "2026-11-25"
PREFIX = "tables/results"


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.new_bucket("results")


@pytest.fixture
def store(bucket: str) -> Iterator[ResultsStore]:
    yield ResultsStore(f"s3://{bucket}/{PREFIX}")


def _keys(s3_server: S3Server, bucket: str) -> list[str]:
    listing = s3_server.client().list_objects_v2(Bucket=bucket)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def _stage_run(store: ResultsStore, run_id: str, count: int, files: int = 2) -> None:
    staging = store.prepare(run_id)
    for i in range(files):
        rows = result_rows(uris(f"s3://src/{run_id}", count // files, start=i * count), seed=i)
        stage(staging, rows, f"part-{i}.parquet")


def test_commit_and_read_back_on_s3(s3_server: S3Server, bucket: str, store: ResultsStore) -> None:
    _stage_run(store, "night-1", 8)
    assert store.read().num_rows == 0  # staged only: nothing visible
    info = store.commit("night-1", DAY, {"objects": 8})
    assert info.rows == 8 and all(f.startswith(f"s3://{bucket}/{PREFIX}/") for f in info.files)
    table = store.read()
    assert table.num_rows == 8
    first_mask = table.filter(ds.field("status") == "ok").column("mask_png")[0].as_py()
    assert decode_mask(first_mask).shape == (16, 16)
    keys = _keys(s3_server, bucket)
    assert all(key.startswith(PREFIX + "/") for key in keys)  # nothing outside the prefix
    assert not [k for k in keys if "/_staging/" in k or "/_commits/" in k]
    assert f"{PREFIX}/run_date={DAY}/run_id=night-1/_SUCCESS" in keys


def test_hive_readers_ignore_staging_on_s3(s3_server: S3Server, store: ResultsStore) -> None:
    _stage_run(store, "night-1", 4)
    store.commit("night-1", DAY)
    _stage_run(store, "night-2", 6)  # staged, never committed
    pa_fs, root = pyarrow_filesystem(store.uri)
    dataset = ds.dataset(root, filesystem=pa_fs, format="parquet", partitioning="hive")
    assert dataset.count_rows() == 4
    options = {
        "aws_endpoint_url": s3_server.endpoint,
        "aws_access_key_id": s3_server.env["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": s3_server.env["AWS_SECRET_ACCESS_KEY"],
        "aws_region": "us-east-1",
        "aws_allow_http": "true",
    }
    frame = pl.scan_parquet(
        f"{store.uri}/run_date=*/run_id=*/*.parquet",
        hive_partitioning=True,
        storage_options=options,
    ).collect()
    assert frame.height == 4 and set(frame["run_id"]) == {"night-1"}


def test_recommit_replaces_on_s3(s3_server: S3Server, bucket: str, store: ResultsStore) -> None:
    _stage_run(store, "night-1", 6, files=3)
    store.commit("night-1", DAY)
    _stage_run(store, "night-1", 4)
    info = store.commit("night-1", DAY)
    assert info.replaced_files == 3
    assert store.read().num_rows == 4
    parquet = [k for k in _keys(s3_server, bucket) if k.endswith(".parquet")]
    assert sorted(f"s3://{bucket}/{k}" for k in parquet) == sorted(info.files)


def test_interrupted_commit_on_s3_is_invisible_and_recoverable(
    s3_server: S3Server, bucket: str, store: ResultsStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stage_run(store, "night-1", 4)
    real_write = store._write_atomic

    def crash_on_manifest(path: str, data: bytes) -> None:
        if "/_manifests/" in path:
            raise KeyboardInterrupt("driver killed")
        real_write(path, data)

    monkeypatch.setattr(store, "_write_atomic", crash_on_manifest)
    with pytest.raises(KeyboardInterrupt):
        store.commit("night-1", DAY)
    monkeypatch.undo()
    assert store.read().num_rows == 0 and store.runs() == []
    fresh = ResultsStore(store.uri)  # e.g. the next night's driver
    fresh.prepare("night-2")
    assert not [k for k in _keys(s3_server, bucket) if "run_date=" in k]
    assert fresh.commit("night-1", DAY).rows == 4  # staging survived: retry works


def test_scored_identities_on_s3(store: ResultsStore) -> None:
    staging = store.prepare("night-1")
    stage(staging, result_rows(uris("s3://src/a", 3), model_id="m"), "a.parquet")
    stage(staging, result_rows(uris("s3://src/b", 2), model_id="other"), "b.parquet")
    store.commit("night-1", DAY)
    scored = store.scored_identities("m")
    assert sorted(scored.column("source_uri").to_pylist()) == uris("s3://src/a", 3)
    assert scored.column("object_etag").to_pylist() == ["etag-1"] * 3


def test_commits_of_other_processes_are_seen_despite_listing_caches(
    s3_server: S3Server, store: ResultsStore
) -> None:
    _stage_run(store, "night-1", 2)
    store.commit("night-1", DAY)
    assert [m.run_id for m in store.runs()] == ["night-1"]  # listing now cached in-process
    other_process = textwrap.dedent(
        f"""
        from tests.unit.results.helpers import result_rows, stage, uris
        from vip2clip.results import ResultsStore
        store = ResultsStore({store.uri!r})
        stage(store.prepare("night-2"), result_rows(uris("s3://src/n2", 3)))
        store.commit("night-2", {DAY!r})
        """
    )
    env = {**os.environ, **s3_server.env}
    subprocess.run([sys.executable, "-c", other_process], check=True, env=env, timeout=120)
    assert [m.run_id for m in store.runs()] == ["night-1", "night-2"]
    assert store.read().num_rows == 5


def test_driver_killed_inside_commit_on_s3(s3_server: S3Server, store: ResultsStore) -> None:
    """SIGKILL a real committing process mid-copy: readers keep the previous commit."""
    _stage_run(store, "night-1", 4)
    before = store.commit("night-1", DAY)
    bucket, prefix = store.uri.removeprefix("s3://").split("/", 1)
    committer = textwrap.dedent(
        f"""
        from tests.unit.results.helpers import result_rows, stage, uris
        from vip2clip.results import ResultsStore
        store = ResultsStore({store.uri!r})
        staging = store.prepare("night-1")
        for i in range({KILL_TEST_FILES}):
            stage(staging, result_rows(uris(f"s3://src/new{{i}}", 2)), f"part-{{i}}.parquet")
        print("staged", flush=True)
        store.commit("night-1", {DAY!r})
        """
    )
    env = {**os.environ, **s3_server.env}
    proc = subprocess.Popen([sys.executable, "-c", committer], env=env, stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"staged"
        partition = f"{prefix}/run_date={DAY}/run_id=night-1/part-"
        _wait_for_new_object(s3_server, bucket, partition, len(before.files), proc)
        proc.kill()  # new files are being published: the commit is under way
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert store.manifest("night-1").commit_id == before.commit_id  # type: ignore[union-attr]
    assert sorted(store.committed_files()) == sorted(before.files)
    assert store.read().num_rows == 4
    assert len(_published(s3_server, bucket)) > len(before.files)  # the documented glob window
    assert store.recover() == ["night-1"]
    assert _published(s3_server, bucket) == sorted(before.files)
    assert store.commit("night-1", DAY).rows == 2 * KILL_TEST_FILES  # the retry completes


def _published(s3_server: S3Server, bucket: str) -> list[str]:
    keys = _keys(s3_server, bucket)
    return sorted(f"s3://{bucket}/{k}" for k in keys if "run_date=" in k and k.endswith("parquet"))


KILL_TEST_FILES = 40  # enough copies that the kill lands inside the commit


def _wait_for_new_object(
    s3_server: S3Server, bucket: str, prefix: str, existing: int, proc: subprocess.Popen[bytes]
) -> None:
    """Return as soon as more than ``existing`` objects live under ``prefix``."""
    client = s3_server.client()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("KeyCount", 0) > existing:
            return
        time.sleep(0.002)
    raise AssertionError(f"nothing new under {prefix} while the committer ran ({proc.poll()})")
