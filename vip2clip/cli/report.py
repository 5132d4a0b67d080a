"""``vip2clip report``: a static HTML report of one scoring run."""

from __future__ import annotations

import click

from vip2clip.report.data import DEFAULT_MAX_ERRORS, DEFAULT_TOP


@click.command("report")
@click.option("--table", required=True, help="results table, an Iceberg identifier namespace.table")
@click.option(
    "--catalog", help="pyiceberg catalog name (default: pyiceberg's default, else embedded)"
)
@click.option("--run", "run_id", help="run id (default: the latest run on main)")
@click.option("--output", "-o", required=True, help="HTML file to write (path or s3:// URI)")
@click.option(
    "--top",
    type=click.IntRange(min=0),
    default=DEFAULT_TOP,
    show_default=True,
    help="how many top-scored images to show",
)
@click.option(
    "--max-errors",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_ERRORS,
    show_default=True,
    help="error rows listed one by one",
)
@click.option(
    "--endpoint-url",
    help="S3-compatible endpoint of source images and --output (default: AWS_ENDPOINT_URL)",
)
def report(
    table: str,
    catalog: str | None,
    run_id: str | None,
    output: str,
    top: int,
    max_errors: int,
    endpoint_url: str | None,
) -> None:
    """Write a self-contained HTML report: top anomalies with heat-map overlays, score
    histogram, errors by reason and the run's snapshot summary. Opens offline in any browser."""
    from vip2clip.query import open_results
    from vip2clip.report import write_report
    from vip2clip.results import check_identifier, check_run_id
    from vip2clip.storage import StorageConfig, check_uri

    check_identifier(table)
    if run_id is not None:
        check_run_id(run_id)
    storage = StorageConfig(endpoint_url=endpoint_url)
    check_uri(output)  # before any work: a URI with credentials is refused, never echoed
    results = open_results(table, catalog)
    data = write_report(output, results, run_id, top=top, max_errors=max_errors, storage=storage)
    run, counts = data.run, data.counts
    click.echo(
        f"wrote {output}: run {run.run_id} ({run.run_date or 'no rows'}), {counts.ok} ok, "
        f"{counts.errors} errors, top {len(data.top)} shown"
    )
