"""``vip2clip table``: snapshot history and maintenance of the Iceberg results table."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict
from typing import Any

import click
import pyarrow as pa

from vip2clip.results import check_identifier
from vip2clip.results.maintenance import (
    DEFAULT_COMPACT_BELOW_ROWS,
    DEFAULT_ORPHAN_AGE_HOURS,
    DEFAULT_RETAIN_DAYS,
    MaintenancePolicy,
    run_maintenance,
)

_TABLE = click.argument("table")
_CATALOG = click.option(
    "--catalog", help="pyiceberg catalog name (default: pyiceberg's default, else embedded)"
)
# SnapshotInfo field -> column header of `table history`
_HISTORY_COLUMNS = {
    "snapshot_id": "snapshot",
    "committed_at": "committed_at",
    "operation": "operation",
    "branch": "branch",
    "run_id": "run",
    "model_id": "model",
    "commit_seq": "seq",
    "run_complete": "complete",
    "added_rows": "added",
    "total_rows": "total",
}


@click.group("table")
def table() -> None:
    """Inspect and maintain the Iceberg results table (TABLE is namespace.table)."""


@table.command("history")
@_TABLE
@_CATALOG
@click.option("--json", "as_json", is_flag=True, help="one JSON object per snapshot")
def history(table: str, catalog: str | None, as_json: bool) -> None:
    """List the table's retained snapshots, oldest first, with their runs.

    Branch names the branch whose head the snapshot is (main, or a --full re-run's
    replace branch); complete marks a run's final commit; added and total count rows.
    """
    from vip2clip.query import Preview, open_results, render_preview

    check_identifier(table)
    snapshots = open_results(table, catalog).snapshots()
    rows = [{k: _plain(v) for k, v in asdict(info).items()} for info in snapshots]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row, sort_keys=True))
        return
    headed = [{_HISTORY_COLUMNS[k]: v for k, v in row.items()} for row in rows]
    schema = pa.schema([pa.field(name, pa.string()) for name in _HISTORY_COLUMNS.values()])
    click.echo(render_preview(Preview(schema, headed, truncated=False)), nl=False)


@table.command("maintain")
@_TABLE
@_CATALOG
@click.option(
    "--retain-days",
    type=click.IntRange(min=0),
    default=DEFAULT_RETAIN_DAYS,
    show_default=True,
    help="expire snapshots older than this (branch heads are kept)",
)
@click.option(
    "--orphan-age-hours",
    type=click.IntRange(min=1),
    default=DEFAULT_ORPHAN_AGE_HOURS,
    show_default=True,
    help="remove unreferenced data files older than this (keep it above a job's run time)",
)
@click.option(
    "--compact-below-rows",
    type=click.IntRange(min=1),
    default=DEFAULT_COMPACT_BELOW_ROWS,
    show_default=True,
    help="merge each run's data files smaller than this, per partition",
)
@click.option("--dry-run", is_flag=True, help="report what would be done, change nothing")
def maintain(
    table: str,
    catalog: str | None,
    retain_days: int,
    orphan_age_hours: int,
    compact_below_rows: int,
    dry_run: bool,
) -> None:
    """Compact small files, expire old snapshots and remove orphan files.

    Safe beside running jobs: every change is a catalog commit (retried on conflicts)
    or a delete of files that no retained snapshot references and that are older
    than --orphan-age-hours.
    """
    from vip2clip.query import open_results

    check_identifier(table)
    policy = MaintenancePolicy(
        retain=dt.timedelta(days=retain_days),
        orphan_age=dt.timedelta(hours=orphan_age_hours),
        compact_below_rows=compact_below_rows,
        dry_run=dry_run,
    )
    report = run_maintenance(open_results(table, catalog), policy)
    for line in report.lines():
        click.echo(f"{table}: {line}")


def _plain(value: Any) -> Any:
    return value.isoformat(timespec="seconds") if isinstance(value, dt.datetime) else value
