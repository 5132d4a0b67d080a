"""Run the Python recipes of docs/querying.md in a fresh interpreter, as a user would.

pyiceberg reads its ``PYICEBERG_CATALOG__*`` configuration once, when it is imported, so
the recipes run in a child process that starts with the test catalog's variables. Usage:
``python -m tests.unit.query.recipe_runner IN.json OUT.pickle``; ``IN.json`` maps a recipe
kind to its code blocks (and ``example`` to SQL run on the DuckDB recipe's ``con``);
``OUT.pickle`` maps ``kind/index`` to the recipe's variables as plain Python values.
"""

from __future__ import annotations

import json
import pickle
import sys
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
from pyiceberg.table.snapshots import Snapshot

EXAMPLES = "example"
DUCKDB = "duckdb"


def plain(value: Any) -> Any:
    """A recipe variable as picklable plain values (rows as lists of dicts)."""
    if isinstance(value, pa.Table):
        return value.to_pylist()
    if isinstance(value, pl.DataFrame):
        return value.to_dicts()
    if isinstance(value, np.ndarray):
        return value.shape
    if isinstance(value, Snapshot):
        return value.snapshot_id
    if isinstance(value, list | tuple | int | float | str):
        return value
    return repr(type(value))


def main(source: Path, target: Path) -> None:
    recipes: dict[str, list[str]] = json.loads(source.read_text())
    found: dict[str, Any] = {}
    for kind, blocks in recipes.items():
        if kind == EXAMPLES:
            continue
        for index, code in enumerate(blocks):
            namespace: dict[str, Any] = {}
            exec(code, namespace)
            found[f"{kind}/{index}"] = {
                k: plain(v) for k, v in namespace.items() if not k.startswith("__")
            }
            if kind == DUCKDB:
                con = namespace["con"]
                found[EXAMPLES] = [
                    con.sql(sql).to_arrow_table().to_pylist() for sql in recipes[EXAMPLES]
                ]
    target.write_bytes(pickle.dumps(found))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
