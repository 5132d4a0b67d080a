"""The top-N scored rows of a run, reading masks of those N rows only.

Masks are the bulk of a results table (an 8-bit PNG per image). A plain
``ORDER BY image_score DESC LIMIT n`` that also selects ``mask_png`` would read every
mask of the run; instead the ranking pass reads the light columns of the run's data
files (those of one snapshot, pruned by their ``run_id`` bounds) row group by row
group, and the masks of the winners are then read from their row groups alone. Files
are opened through the table's own pyiceberg file IO (local, S3, any configured store).
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vip2clip.results import STATUS_OK, ResultsTable
from vip2clip.results.filters import run_rows

RANKING_COLUMNS = (
    "source_uri",
    "image_score",
    "is_anomalous",
    "max_pixel_score",
    "anomalous_area_fraction",
    "bbox_x0",
    "bbox_y0",
    "bbox_x1",
    "bbox_y1",
    "image_width",
    "image_height",
    "model_id",
)
MASK_COLUMN = "mask_png"
_FILTERS = ("status", "run_id")  # read with the ranking columns, to pick the run's ok rows
_ROW = "__row"


@dataclass(frozen=True)
class _Ranked:
    file: str
    row_group: int
    row: int  # index inside the row group
    values: dict[str, Any]

    @property
    def order(self) -> tuple[float, str]:
        """Highest score first; ties by source URI (as ``ORDER BY image_score DESC, uri``)."""
        return (-self.values["image_score"], self.values["source_uri"])


def top_rows(
    results: ResultsTable, run_id: str, n: int, snapshot_id: int | None = None
) -> list[dict[str, Any]]:
    """The ``n`` best-scored ``ok`` rows of a run (in a snapshot, default main's head),
    with their ``mask_png``."""
    if n <= 0:
        return []
    best: list[_Ranked] = []
    for data_file in results.data_files(run_rows(run_id), snapshot_id):
        uri = data_file.file_path
        with results.table.io.new_input(uri).open() as handle:
            parquet = pq.ParquetFile(handle)
            for group in range(parquet.num_row_groups):
                table = parquet.read_row_group(group, columns=[*RANKING_COLUMNS, *_FILTERS])
                ranked = _ranked(table, run_id, uri, group, n)
                best = heapq.nsmallest(n, best + ranked, lambda r: r.order)
    masks = _masks(results, best)
    return [{**r.values, MASK_COLUMN: masks[(r.file, r.row_group, r.row)]} for r in best]


def _ranked(table: pa.Table, run_id: str, uri: str, group: int, n: int) -> list[_Ranked]:
    """The ``n`` best ``ok`` rows of ``run_id`` in one row group."""
    table = table.append_column(_ROW, pa.array(np.arange(table.num_rows)))
    scored = pc.and_(pc.equal(table["status"], STATUS_OK), pc.is_valid(table["image_score"]))
    table = table.filter(pc.and_(scored, pc.equal(table["run_id"], run_id)))
    table = table.sort_by([("image_score", "descending"), ("source_uri", "ascending")]).slice(0, n)
    rows = table.select([*RANKING_COLUMNS, _ROW]).to_pylist()
    return [_Ranked(uri, group, row.pop(_ROW), row) for row in rows]


def _masks(results: ResultsTable, rows: list[_Ranked]) -> dict[tuple[str, int, int], bytes | None]:
    """``mask_png`` of ``rows``, reading only the row groups that hold them."""
    wanted: dict[tuple[str, int], list[int]] = defaultdict(list)
    for r in rows:
        wanted[(r.file, r.row_group)].append(r.row)
    masks: dict[tuple[str, int, int], bytes | None] = {}
    for (uri, group), indices in wanted.items():
        with results.table.io.new_input(uri).open() as handle:
            column = pq.ParquetFile(handle).read_row_group(group, columns=[MASK_COLUMN])[0]
        for index in indices:
            masks[(uri, group, index)] = column[index].as_py()
    return masks
