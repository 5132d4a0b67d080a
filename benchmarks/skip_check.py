"""Cost of the incremental skip check against a short and a long table history.

Builds a results table (embedded SQLite catalog, local warehouse in a temp folder)
with synthetic rows (no model: ~2 KB random "masks"), as nightly incremental runs
leave it: the measured model's nights on the measured prefix add up to the listing
(a big first night, then small increments), and every night other models and other
prefixes write rows too. Then it times what the scoring driver does before a night
starts, ``vip2clip.scoring.pipeline.skip_keys`` with the run's own
``skip_filters``, for a listing of ``--rows`` objects, and reports the data files the
scan plans (count and bytes), the bytes of the columns it projects, and the bytes the
process really read. A scan of the identity columns of the whole history (what a
skip check without pruning reads) is shown for contrast.

    python benchmarks/skip_check.py                     # 100k objects, 1 and 30 nights
    python benchmarks/skip_check.py --rows 5000 --nights 1,5
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table
from vip2clip.results import (
    IDENTITY_COLUMNS,
    ResultsTable,
    RunState,
    TableRef,
    conform,
    resolve_catalog,
)
from vip2clip.results import table as results_table
from vip2clip.results.catalog import HOME_ENV
from vip2clip.results.filters import ALL_ROWS
from vip2clip.scoring.config import DEFAULT_ROWS_PER_FILE, ScoringConfig
from vip2clip.scoring.pipeline import ModelInfo, RunPlan, skip_filters, skip_keys

TABLE = "bench.results"
MODEL = "vip2clip-bench000000000"  # the measured model
SOURCE = "s3://archive/line-1/"  # the measured source prefix
IMAGE_SIZE = 518
MASK_BYTES = 2048  # a 518 px anomaly map as an 8-bit PNG is ~1-3 KB
INCREMENT_SHARE = 0.01  # each later night adds 1% new objects to the prefix
OTHER_SHARE = 0.05  # rows per night of each other model / other prefix, share of --rows
FIRST_NIGHT = dt.date(2026, 11, 1)
T = TypeVar("T")


@dataclass(frozen=True)
class Measure:
    """One skip-check measurement."""

    seconds: float
    plan_seconds: float
    keys: int
    files: int
    file_bytes: int
    column_bytes: int
    read_bytes: int


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="objects in the listing")
    parser.add_argument("--nights", default="1,30", help="history lengths, comma-separated")
    parser.add_argument("--other-models", type=int, default=2, help="other models per night")
    parser.add_argument("--other-prefixes", type=int, default=2, help="other prefixes per night")
    parser.add_argument("--rows-per-file", type=int, default=DEFAULT_ROWS_PER_FILE)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows: list[list[object]] = []
    for nights in (int(n) for n in args.nights.split(",")):
        with tempfile.TemporaryDirectory(prefix="vip2clip-skip-bench-") as home:
            os.environ[HOME_ENV] = home
            results = ResultsTable.open(TableRef(resolve_catalog(), TABLE), create=True)
            started = time.perf_counter()
            history_rows = build_history(results, args, nights)
            built = time.perf_counter() - started
            results.refresh()
            total_files = results.data_files()
            print(
                f"{nights} night(s): {history_rows:,} rows in {len(total_files)} files "
                f"({sum(f.file_size_in_bytes for f in total_files) / 1e6:,.0f} MB), "
                f"built in {built:.0f} s",
                flush=True,
            )
            check = measure_skip_check(results, args.rows, args.repeats)
            whole = measure_whole_history(results, args.repeats)
            for what, m in (("skip check (pruned)", check), ("whole history scan", whole)):
                rows.append(
                    [
                        nights,
                        what,
                        m.seconds,
                        m.plan_seconds,
                        m.keys,
                        m.files,
                        m.file_bytes / 1e6,
                        m.column_bytes / 1e6,
                        m.read_bytes / 1e6,
                    ]
                )
    print(f"\nlisting: {args.rows:,} objects under {SOURCE}; median of {args.repeats} runs\n")
    print_table(
        [
            "nights",
            "read",
            "seconds",
            "planning alone s",
            "keys",
            "files planned",
            "file MB",
            "projected column MB",
            "MB read (rchar)",
        ],
        rows,
    )
    return 0


# ---------------------------------------------------------------------- the history


def build_history(results: ResultsTable, args: argparse.Namespace, nights: int) -> int:
    """Commit ``nights`` nights of runs; return the number of rows written."""
    increment = max(1, int(args.rows * INCREMENT_SHARE))
    first = args.rows - increment * (nights - 1)
    if first < 1:
        raise SystemExit(f"--rows {args.rows} is too small for {nights} nights")
    others = max(1, int(args.rows * OTHER_SHARE))
    rng = np.random.default_rng(0)
    written, scored = 0, 0
    for night in range(nights):
        day = FIRST_NIGHT + dt.timedelta(days=night)
        count = first if night == 0 else increment
        uris = [_uri(SOURCE, i) for i in range(scored, scored + count)]
        written += _commit_run(results, rng, f"n{night}-main", day, MODEL, uris, args)
        scored += count
        for m in range(args.other_models):
            model = f"vip2clip-other{m:012d}"
            uris = [_uri(SOURCE, i) for i in range(night * others, (night + 1) * others)]
            written += _commit_run(results, rng, f"n{night}-model{m}", day, model, uris, args)
        for p in range(args.other_prefixes):
            prefix = f"s3://archive/line-{p + 2}/"
            uris = [_uri(prefix, i) for i in range(night * others, (night + 1) * others)]
            written += _commit_run(results, rng, f"n{night}-prefix{p}", day, MODEL, uris, args)
    return written


def _uri(prefix: str, i: int) -> str:
    return f"{prefix}{i // 1000:04d}/img-{i:08d}.jpg"


def _commit_run(
    results: ResultsTable,
    rng: np.random.Generator,
    run_id: str,
    day: dt.date,
    model: str,
    uris: list[str],
    args: argparse.Namespace,
) -> int:
    """Write a run's rows in files of ``--rows-per-file`` and commit them in one snapshot."""
    files = [
        data_file
        for chunk in _chunks(uris, args.rows_per_file)
        for data_file in results_table.write_data_files(
            _rows(rng, run_id, day, model, chunk), results.ref
        )
    ]
    results.commit(
        files,
        {
            results_table.RUN_ID: run_id,
            results_table.MODEL_ID: model,
            results_table.RUN_COMPLETE: "true",
        },
    )
    return len(uris)


def _chunks(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _rows(
    rng: np.random.Generator, run_id: str, day: dt.date, model: str, uris: list[str]
) -> pa.Table:
    n = len(uris)
    scored_at = dt.datetime.combine(day, dt.time(2), tzinfo=dt.UTC)
    return conform(
        {
            "run_id": [run_id] * n,
            "run_date": [day] * n,
            "source_uri": uris,
            "object_size": [_size(u) for u in uris],
            "object_etag": [f"etag-{_size(u)}" for u in uris],
            "model_id": [model] * n,
            "image_score": rng.random(n),
            "mask_png": [rng.bytes(MASK_BYTES) for _ in range(n)],
            "mask_height": [IMAGE_SIZE] * n,
            "mask_width": [IMAGE_SIZE] * n,
            "status": ["ok"] * n,
            "scored_at": [scored_at] * n,
        }
    )


def _size(uri: str) -> int:
    return 100_000 + len(uri) * 7 + int(uri[-12:-4])


# ---------------------------------------------------------------------- measurements


def measure_skip_check(results: ResultsTable, listed: int, repeats: int) -> Measure:
    """Time the driver's skip check for a new incremental night of the measured model."""
    config = ScoringConfig(source=SOURCE, table=TABLE, mode="incremental", run_id="tonight")
    plan = RunPlan(
        "tonight", "2026-12-31", ModelInfo(MODEL, IMAGE_SIZE), RunState.NEW, results_table.MAIN
    )
    filters = skip_filters(config, plan)
    snapshot = results.snapshot_id()
    (seconds, read), keys = _timed(lambda: skip_keys(results.ref, filters, snapshot), repeats)
    (plan_seconds, _), plans = _timed(
        lambda: [results.data_files(flt, snapshot) for flt in filters], repeats
    )
    planned = {f.file_path: f for files in plans for f in files}
    columns = set(IDENTITY_COLUMNS) | {"run_id", "model_id", "status", "error_reason"}
    listing = pa.table(
        {
            "source_uri": [_uri(SOURCE, i) for i in range(listed)],
            "object_size": [_size(_uri(SOURCE, i)) for i in range(listed)],
            "object_etag": [f"etag-{_size(_uri(SOURCE, i))}" for i in range(listed)],
            "object_mtime": pa.nulls(listed, pa.timestamp("us", tz="UTC")),
        }
    )
    unscored = keys.unscored(listing).num_rows
    if unscored:
        raise SystemExit(f"skip check found only {listed - unscored} of {listed} scored objects")
    return Measure(
        seconds=seconds,
        plan_seconds=plan_seconds,
        keys=int(keys.array.size),
        files=len(planned),
        file_bytes=sum(f.file_size_in_bytes for f in planned.values()),
        column_bytes=_column_bytes(list(planned), columns),
        read_bytes=read,
    )


def measure_whole_history(results: ResultsTable, repeats: int) -> Measure:
    """Identity columns of every committed file: a skip check without pruning."""

    def scan() -> int:
        return sum(b.num_rows for b in results.batches(ALL_ROWS, IDENTITY_COLUMNS))

    (seconds, read), keys = _timed(scan, repeats)
    (plan_seconds, _), files = _timed(results.data_files, repeats)
    return Measure(
        seconds=seconds,
        plan_seconds=plan_seconds,
        keys=keys,
        files=len(files),
        file_bytes=sum(f.file_size_in_bytes for f in files),
        column_bytes=_column_bytes([f.file_path for f in files], set(IDENTITY_COLUMNS)),
        read_bytes=read,
    )


def _timed(fn: Callable[[], T], repeats: int) -> tuple[tuple[float, int], T]:
    """Median seconds and bytes read by this process (``rchar``) of ``fn``, and its result."""
    result = fn()  # warm-up: the catalog connection, imports
    runs: list[tuple[float, int]] = []
    for _ in range(repeats):
        before, started = _rchar(), time.perf_counter()
        result = fn()
        runs.append((time.perf_counter() - started, _rchar() - before))
    runs.sort()
    return runs[len(runs) // 2], result


def _rchar() -> int:
    """Bytes this process has read through system calls (files, sockets), from /proc."""
    text = Path("/proc/self/io").read_text(encoding="ascii")
    fields = dict(line.split(": ") for line in text.splitlines())
    return int(fields["rchar"])


def _column_bytes(paths: list[str], columns: set[str]) -> int:
    """Compressed bytes of ``columns`` in the files' row groups (what a projection reads)."""
    total = 0
    for path in paths:
        meta = pq.ParquetFile(path.removeprefix("file://")).metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                chunk = group.column(c)
                if chunk.path_in_schema in columns:
                    total += chunk.total_compressed_size
    return total


if __name__ == "__main__":
    sys.exit(main())
