"""Flaky object storage: every S3 request of a scoring run goes through a proxy that
resets 15 % of new connections and cuts another 15 % mid-reply (truncated downloads),
and one listed object is gone before it is read.

The source and the Iceberg table's warehouse are on the same flaky endpoint. The
run must retry its way through the faults (manifest, reads, the table's data and
metadata files, commits) and commit one row per listed object: a cut download must
be retried, not scored as a truncated image; the missing object must be an
``object_missing`` error row.
"""

from __future__ import annotations

import csv
import io
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from tests.fixtures.flaky_proxy import FlakyProxy
from tests.fixtures.iceberg import TABLE, CatalogFactory
from tests.reliability.helpers import DETECTOR, RUN_DATE, assert_exactly_once, image_bytes
from vip2clip.data.decode import OBJECT_MISSING
from vip2clip.scoring import ScoringConfig, run_scoring
from vip2clip.storage import StorageConfig

pytestmark = pytest.mark.integration

N_IMAGES = 40
MIN_FAULTS = 5  # each kind; at 15 % of hundreds of connections, fewer would mean no fault


def _upload(s3_server: Any, bucket: str, objects: dict[str, bytes]) -> None:
    client = s3_server.client()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda kv: client.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]),
                      objects.items()))  # fmt: skip


def _manifest(s3_server: Any, bucket: str, keys: list[str]) -> bytes:
    """A CSV manifest with the identity each object had when it was listed."""
    client = s3_server.client()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["source_uri", "object_size", "object_etag"])
    for key in keys:
        head = client.head_object(Bucket=bucket, Key=key)
        writer.writerow([f"s3://{bucket}/{key}", head["ContentLength"], head["ETag"].strip('"')])
    return out.getvalue().encode()


def test_scoring_retries_through_flaky_storage(
    ray_cluster: Any, s3_server: Any, flaky_s3: FlakyProxy, iceberg_catalog: CatalogFactory
) -> None:
    bucket = s3_server.new_bucket("flaky")
    rng = np.random.default_rng(3)
    keys = [f"in/img-{i:03d}.{'jpg' if i % 2 else 'png'}" for i in range(N_IMAGES)]
    _upload(s3_server, bucket, {k: image_bytes(rng, i) for i, k in enumerate(keys)})
    manifest = _manifest(s3_server, bucket, keys)
    s3_server.client().put_object(Bucket=bucket, Key="todo.csv", Body=manifest)
    deleted = f"s3://{bucket}/{keys[7]}"
    s3_server.client().delete_object(Bucket=bucket, Key=keys[7])  # listed, then gone
    through_proxy = StorageConfig(endpoint_url=flaky_s3.endpoint)
    catalog = iceberg_catalog(f"s3://{bucket}/warehouse", flaky_s3.endpoint)
    drops_before, cuts_before = flaky_s3.dropped, flaky_s3.cut
    config = ScoringConfig.model_validate(
        {
            "source": f"s3://{bucket}/todo.csv",
            "table": TABLE,
            "catalog": catalog.name,
            "commit_every": 8,  # several snapshots, each committed through the proxy
            "detector": DETECTOR,
            "storage": through_proxy,
            "mode": "full",
            "run_id": "flaky",
            "run_date": RUN_DATE,
            "batch_size": 4,
            "read_batch_size": 4,
            "rows_per_file": 4,
            # 15 % cut downloads: 3 attempts would lose ~0.3 % of objects to read_failed,
            # i.e. a flaky test; an operator facing such a store raises it the same way.
            "read_attempts": 5,
            "progress": False,
        }
    )
    summary = run_scoring(config)
    assert flaky_s3.dropped - drops_before >= MIN_FAULTS, "the proxy reset too few connections"
    assert flaky_s3.cut - cuts_before >= MIN_FAULTS, "the proxy cut too few replies"
    assert flaky_s3.forwarded > 0
    inputs = {f"s3://{bucket}/{k}" for k in keys}
    rows = {r["source_uri"]: r for r in assert_exactly_once(catalog, "flaky", inputs)}
    assert rows[deleted]["status"] == "error"
    assert rows[deleted]["error_reason"] == OBJECT_MISSING
    assert all(r["status"] == "ok" for uri, r in rows.items() if uri != deleted)
    assert (summary.ok, summary.errors) == (N_IMAGES - 1, 1)
    assert summary.error_reasons == {OBJECT_MISSING: 1}
    assert summary.commits > 1
