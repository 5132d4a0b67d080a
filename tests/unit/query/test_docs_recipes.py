"""The recipes of docs/querying.md run against a real Iceberg table and give right answers.

pyiceberg, polars and DuckDB recipes run in a fresh interpreter configured like a user's
shell (``PYICEBERG_CATALOG__*``); the example queries must give the same rows through the
DuckDB recipe as through ``vip2clip query``; the Spark and Trino configurations must
point at the catalog the pyiceberg configuration defines.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pickle
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.unit.query.builders import (
    CATALOG,
    NIGHT_1,
    NIGHT_2,
    SCORES_1,
    SCORES_2,
    TABLE,
    TwoNights,
    results_catalog,
    two_nights,
)
from vip2clip.query import open_results, query_table

REPO = Path(__file__).resolve().parents[3]
DOC = REPO / "docs" / "querying.md"
SECRETS = REPO / "deploy" / "k8s" / "secrets.yaml"
DOC_CATALOG = "production"  # the catalog the recipes name; replaced by the test's
RUNNER_TIMEOUT_S = 120
_RECIPE = re.compile(r"<!-- recipe: (?P<kind>[\w-]+) -->\n```\w+\n(?P<body>.*?)\n```", re.S)
PYTHON_KINDS = ("vip2clip", "pyiceberg", "pyiceberg-history", "polars", "duckdb")


def recipes(kind: str) -> list[str]:
    found = [m["body"] for m in _RECIPE.finditer(DOC.read_text()) if m["kind"] == kind]
    assert found, f"no '{kind}' recipe in {DOC.name}"
    return found


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoNights]:
    root = tmp_path_factory.mktemp("docs")
    with results_catalog(root) as results:
        yield two_nights(results, str(root / "images"))


@pytest.fixture(scope="module")
def ran(snapshots: TwoNights, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Every Python recipe's variables, from one child interpreter."""
    folder = tmp_path_factory.mktemp("recipes")
    blocks = {kind: [_ours(code) for code in recipes(kind)] for kind in PYTHON_KINDS}
    blocks["example"] = recipes("example")
    (folder / "in.json").write_text(json.dumps(blocks))
    subprocess.run(
        [sys.executable, "-m", "tests.unit.query.recipe_runner", "in.json", "out.pickle"],
        cwd=folder,
        env={**os.environ, "PYTHONPATH": str(REPO), "POLARS_ICEBERG_PLANNER": "pyiceberg"},
        check=True,
        timeout=RUNNER_TIMEOUT_S,
    )
    found: dict[str, Any] = pickle.loads((folder / "out.pickle").read_bytes())
    return found


def _ours(code: str) -> str:
    assert f'"{DOC_CATALOG}"' in code and TABLE in code  # every recipe names both
    return code.replace(f'"{DOC_CATALOG}"', f'"{CATALOG}"')


def test_vip2clip_python_api_recipe(ran: dict[str, Any]) -> None:
    got = ran["vip2clip/0"]
    counts = sorted((r["run_id"], r["n"]) for r in got["rows"])
    assert counts == [(NIGHT_1[0], len(SCORES_1) + 1), (NIGHT_2[0], len(SCORES_2) + 2)]
    assert got["anomaly_map"] == (32, 32)


def test_pyiceberg_scan_recipe(ran: dict[str, Any]) -> None:
    rows = ran["pyiceberg/0"]["rows"]
    assert sorted(r["image_score"] for r in rows) == sorted(
        s for s in SCORES_1 + SCORES_2 if s >= 0.5
    )
    assert set(rows[0]) == {"run_date", "source_uri", "image_score"}


def test_pyiceberg_history_and_time_travel_recipe(
    ran: dict[str, Any], snapshots: TwoNights
) -> None:
    got = ran["pyiceberg-history/0"]
    assert got["history"] == [
        (snapshots.night_1, NIGHT_1[0], "true"),
        (snapshots.night_2, NIGHT_2[0], "true"),
    ]
    assert {r["run_id"] for r in got["first"]} == {NIGHT_1[0]}
    assert got["as_of_time"] == snapshots.night_1


def test_polars_recipe(ran: dict[str, Any]) -> None:
    got = ran["polars/0"]
    assert got["nightly"] == [
        {"run_date": dt.date.fromisoformat(NIGHT_1[1]), "n": len(SCORES_1) + 1},
        {"run_date": dt.date.fromisoformat(NIGHT_2[1]), "n": len(SCORES_2) + 2},
    ]
    worst = [r["image_score"] for r in got["worst"]]
    assert worst == sorted(SCORES_1 + SCORES_2, reverse=True)[:10]


def test_duckdb_recipe(ran: dict[str, Any]) -> None:
    scores = [score for _, score in ran["duckdb/0"]["rows"]]
    assert scores == sorted(SCORES_1 + SCORES_2, reverse=True)[:5]


@pytest.mark.parametrize("index", range(len(recipes("example"))))
def test_examples_agree_between_the_duckdb_recipe_and_vip2clip_query(
    index: int, ran: dict[str, Any]
) -> None:
    ours = query_table(recipes("example")[index], open_results(TABLE, CATALOG))
    assert ours.num_rows > 0
    assert ours.to_pylist() == ran["example"][index]


def _example(index: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = query_table(
        recipes("example")[index], open_results(TABLE, CATALOG)
    ).to_pylist()
    return rows


def test_top_anomalies_last_night_are_right(snapshots: TwoNights) -> None:
    expected = sorted((s for s in SCORES_2 if s >= 0.5), reverse=True)
    assert [r["image_score"] for r in _example(0)] == expected


def test_error_counts_are_right(snapshots: TwoNights) -> None:
    assert [(str(r["run_date"]), r["error_reason"], r["n"]) for r in _example(1)] == [
        (NIGHT_2[1], "not_an_image", 1),
        (NIGHT_2[1], "object_missing", 1),
        (NIGHT_1[1], "not_an_image", 1),
    ]


def test_night_over_night_is_right(snapshots: TwoNights) -> None:
    got = _example(3)
    changes = sorted((b - a for a, b in zip(SCORES_1, SCORES_2, strict=True)), reverse=True)
    assert [r["change"] for r in got] == pytest.approx(changes)
    assert all(r["latest_score"] - r["previous_score"] == r["change"] for r in got)


def test_latest_result_per_object_is_right(snapshots: TwoNights) -> None:
    got = _example(5)
    assert [str(r["run_date"]) for r in got] == [NIGHT_2[1]] * len(SCORES_2)
    assert [r["image_score"] for r in got] == sorted(SCORES_2, reverse=True)


def test_engine_configurations_point_at_the_documented_catalog() -> None:
    catalog = yaml.safe_load(recipes("pyiceberg-config")[0])["catalog"][DOC_CATALOG]
    assert catalog["type"] == "sql"
    database = urlparse(catalog["uri"])
    where = f"{database.hostname}:{database.port}{database.path}"
    spark = dict(line.split(None, 1) for line in recipes("spark-conf")[0].splitlines())
    trino = dict(line.split("=", 1) for line in recipes("trino-conf")[0].splitlines())
    prefix = f"spark.sql.catalog.{DOC_CATALOG}"  # JDBC catalogs key tables by catalog name
    assert spark[prefix] == "org.apache.iceberg.spark.SparkCatalog"
    assert spark[f"{prefix}.type"] == "jdbc"
    assert spark[f"{prefix}.uri"] == f"jdbc:postgresql://{where}"
    assert spark[f"{prefix}.warehouse"] == catalog["warehouse"]
    assert spark[f"{prefix}.jdbc.user"] == database.username
    assert trino["iceberg.catalog.type"] == "jdbc"
    assert trino["iceberg.jdbc-catalog.catalog-name"] == DOC_CATALOG
    assert trino["iceberg.jdbc-catalog.connection-url"] == f"jdbc:postgresql://{where}"
    assert trino["iceberg.jdbc-catalog.default-warehouse-dir"] == catalog["warehouse"]
    assert trino["iceberg.jdbc-catalog.connection-user"] == database.username
    assert f"PYICEBERG_CATALOG__{DOC_CATALOG.upper()}__URI" in SECRETS.read_text()
    assert where in SECRETS.read_text()  # the deployed catalog is the documented one


def test_no_hive_folder_instructions_remain() -> None:
    text = DOC.read_text()
    for hive in ("run_date=*", "MSCK REPAIR", "hive_partitioning", "ADD PARTITION", "_manifests"):
        assert hive not in text
