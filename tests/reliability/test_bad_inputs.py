"""The bad-input corpus (tests/fixtures/bad_inputs.py, 26 kinds) scored end to end.

Each object must end as exactly one row of the Iceberg results table, ``ok`` or
``error`` with its specific reason, the run must commit, and nothing may be
written outside the table's warehouse (and its catalog database), whatever the
object keys look like (unicode, spaces, ``#``/``%``, ``../``). Checked with the
warehouse on S3 (the whole bucket is listed before and after) and in a local
folder (the whole temp tree is walked before and after).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.bad_inputs import OK, BadInput, is_local_safe
from tests.fixtures.iceberg import TABLE, CatalogFactory, IcebergCatalog
from tests.reliability.helpers import DETECTOR, RUN_DATE
from vip2clip.scoring import ScoringConfig, run_scoring

pytestmark = pytest.mark.integration

MIN_KINDS = 15


def _config(source: str, catalog: IcebergCatalog, run_id: str) -> ScoringConfig:
    return ScoringConfig.model_validate(
        {
            "source": source,
            "table": TABLE,
            "catalog": catalog.name,
            "detector": DETECTOR,
            "mode": "full",
            "run_id": run_id,
            "run_date": RUN_DATE,
            "batch_size": 8,
            "progress": False,
        }
    )


def _assert_outcomes(catalog: IcebergCatalog, run_id: str, expected: dict[str, str]) -> None:
    rows = catalog.rows(run_id)
    uris = [r["source_uri"] for r in rows]
    assert len(uris) == len(set(uris)) == len(expected)
    outcomes = {r["source_uri"]: r["status"] if r["status"] == OK else r["error_reason"]
                for r in rows}  # fmt: skip
    wrong = {u: (outcomes.get(u), e) for u, e in expected.items() if outcomes.get(u) != e}
    assert not wrong, f"(got, expected) per object: {wrong}"
    for row in rows:
        if row["status"] == OK:
            assert row["mask_png"] and row["image_score"] is not None
        else:
            assert row["error_detail"] and row["mask_png"] is None


def _keys(s3_server: Any, bucket: str) -> set[str]:
    paginator = s3_server.client().get_paginator("list_objects_v2")
    return {
        o["Key"] for page in paginator.paginate(Bucket=bucket) for o in page.get("Contents", [])
    }


def test_corpus_from_s3_and_nothing_written_outside_the_prefix(
    ray_cluster: Any, s3_server: Any, iceberg_catalog: CatalogFactory, bad_inputs: list[BadInput]
) -> None:
    assert len(bad_inputs) >= MIN_KINDS
    bucket = s3_server.new_bucket("corpus")
    client = s3_server.client()
    for item in bad_inputs:
        client.put_object(Bucket=bucket, Key=f"in/{item.key}", Body=item.data)
    other_bucket = s3_server.new_bucket("bystander")
    before, before_other = _keys(s3_server, bucket), _keys(s3_server, other_bucket)
    catalog = iceberg_catalog(f"s3://{bucket}/out/warehouse", s3_server.endpoint)
    summary = run_scoring(_config(f"s3://{bucket}/in", catalog, "corpus-s3"))
    expected = {f"s3://{bucket}/in/{i.key}": i.expected for i in bad_inputs}
    _assert_outcomes(catalog, "corpus-s3", expected)
    assert summary.ok == sum(1 for i in bad_inputs if i.expected == OK)
    assert summary.ok + summary.errors == len(bad_inputs)
    written = _keys(s3_server, bucket) - before
    assert written and all(k.startswith("out/warehouse/") for k in written), sorted(written)
    assert _keys(s3_server, bucket) >= before  # no input deleted or renamed
    assert _keys(s3_server, other_bucket) == before_other


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_corpus_from_a_local_folder_writes_only_under_the_output(
    ray_cluster: Any, tmp_path: Path, iceberg_catalog: CatalogFactory, bad_inputs: list[BadInput]
) -> None:
    source = tmp_path / "in" / "archive"
    catalog = iceberg_catalog((tmp_path / "out" / "warehouse").as_uri())
    items = [i for i in bad_inputs if is_local_safe(i.key)]
    for item in items:
        path = source / item.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(item.data)
    before = _tree(tmp_path)
    run_scoring(_config(str(source), catalog, "corpus-local"))
    _assert_outcomes(catalog, "corpus-local", {str(source / i.key): i.expected for i in items})
    written = _tree(tmp_path) - before
    catalog_db = str(catalog.database.relative_to(tmp_path))  # the catalog's own state
    outside = {p for p in written if not p.startswith("out/warehouse")} - {"out", catalog_db}
    assert written and not outside, sorted(outside)
    assert _tree(tmp_path) >= before
