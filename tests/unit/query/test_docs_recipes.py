"""The recipes of docs/querying.md run against a real results table and give right answers."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from tests.unit.query.builders import NIGHT_2, SCORES_1, SCORES_2, two_nights
from vip2clip.query import Engine, query_table
from vip2clip.results import RESULTS_SCHEMA

DOC = Path(__file__).resolve().parents[3] / "docs" / "querying.md"
DOC_ROOT = "/data/results"  # the path the recipes use; replaced by the test table
_RECIPE = re.compile(r"<!-- recipe: (?P<kind>[\w-]+) -->\n```\w+\n(?P<body>.*?)\n```", re.S)

# Arrow type -> SQL type name, per dialect of the DDL recipes.
_TYPES: dict[str, dict[str, str]] = {
    "ddl-athena": {"string": "STRING", "int64": "BIGINT", "int32": "INT", "double": "DOUBLE",
                   "bool": "BOOLEAN", "binary": "BINARY", "timestamp": "TIMESTAMP",
                   "date32[day]": "DATE"},
    "ddl-trino": {"string": "VARCHAR", "int64": "BIGINT", "int32": "INTEGER", "double": "DOUBLE",
                  "bool": "BOOLEAN", "binary": "VARBINARY", "timestamp": "TIMESTAMP",
                  "date32[day]": "DATE"},
}  # fmt: skip
_TYPES["ddl-spark"] = _TYPES["ddl-athena"]


def recipes(kind: str) -> list[str]:
    found = [m["body"] for m in _RECIPE.finditer(DOC.read_text()) if m["kind"] == kind]
    assert found, f"no '{kind}' recipe in {DOC.name}"
    return found


@pytest.fixture(scope="module")
def table(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("docs")
    uri = str(root / "results")
    two_nights(uri, str(root / "images"))
    return uri


@pytest.fixture(scope="module")
def glob_view(table: str) -> Any:
    """DuckDB with the docs' external (glob) view, as an analyst would set it up."""
    connection = duckdb.connect()
    connection.execute(recipes("duckdb-view")[0].replace(DOC_ROOT, table))
    yield connection
    connection.close()


def test_glob_view_sees_committed_runs_only(glob_view: Any) -> None:
    rows = glob_view.sql("SELECT count(*), count(DISTINCT run_id) FROM results").fetchall()
    assert rows == [(len(SCORES_1) + 1 + len(SCORES_2) + 2, 2)]  # not the staged third run
    names = [d[0] for d in glob_view.sql("SELECT * FROM results LIMIT 0").description]
    assert sorted(names) == sorted(RESULTS_SCHEMA.names)


@pytest.mark.parametrize("index", range(len(recipes("example"))))
def test_examples_agree_between_the_glob_view_and_vip2clip_query(
    index: int, table: str, glob_view: Any
) -> None:
    sql = recipes("example")[index]
    external = glob_view.sql(sql).to_arrow_table()
    ours = query_table(sql, table, engine=Engine.DUCKDB)
    assert ours.num_rows > 0
    assert ours.to_pylist() == external.to_pylist()


def test_top_anomalies_last_night_are_right(table: str) -> None:
    got = query_table(recipes("example")[0], table)
    expected = sorted((s for s in SCORES_2 if s >= 0.5), reverse=True)
    assert got.column("image_score").to_pylist() == expected


def test_night_over_night_is_right(table: str) -> None:
    got = query_table(recipes("example")[3], table).to_pylist()
    changes = sorted((b - a for a, b in zip(SCORES_1, SCORES_2, strict=True)), reverse=True)
    assert [r["change"] for r in got] == pytest.approx(changes)
    assert all(r["latest_score"] - r["previous_score"] == r["change"] for r in got)


def test_error_counts_are_right(table: str) -> None:
    got = query_table(recipes("example")[1], table).to_pylist()
    assert [(str(r["run_date"]), r["error_reason"], r["n"]) for r in got] == [
        (NIGHT_2[1], "not_an_image", 1),
        (NIGHT_2[1], "object_missing", 1),
        ("2026-11-24", "not_an_image", 1),
    ]


def test_latest_result_per_object_is_right(table: str) -> None:
    got = query_table(recipes("example")[5], table).to_pylist()
    assert [str(r["run_date"]) for r in got] == [NIGHT_2[1]] * len(SCORES_2)
    assert [r["image_score"] for r in got] == sorted(SCORES_2, reverse=True)


@pytest.mark.parametrize("index", range(len(recipes("python"))))
def test_python_recipes_run(index: int, table: str) -> None:
    namespace: dict[str, Any] = {}
    exec(recipes("python")[index].replace(DOC_ROOT, table), namespace)
    values = [v for k, v in namespace.items() if k in {"rows", "nightly", "worst"}]
    assert values and all(len(v) > 0 for v in values)


@pytest.mark.parametrize("kind", sorted(_TYPES))
def test_ddl_columns_match_the_results_schema(kind: str) -> None:
    ddl = recipes(kind)[0]
    declared = re.findall(r"^\s+(\w+)\s+([A-Z]+)\s*,?\s*$", ddl, re.M)
    partitioning = re.search(r"(?:PARTITIONED BY \(|partitioned_by = ARRAY\[)(.*?)[)\]]", ddl)
    assert partitioning is not None
    assert re.findall(r"run_date|run_id", partitioning[1]) == ["run_date", "run_id"]
    declared += re.findall(r"(\w+) ([A-Z]+)", partitioning[1])  # Athena: typed here only
    expected = [(f.name, _TYPES[kind][_arrow_name(f.type)]) for f in RESULTS_SCHEMA]
    assert sorted(set(declared)) == sorted(expected)


def _arrow_name(data_type: pa.DataType) -> str:
    return "timestamp" if pa.types.is_timestamp(data_type) else str(data_type)
