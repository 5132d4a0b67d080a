"""``vip2clip query``: SQL over the committed rows of a results table."""

from __future__ import annotations

import click

from vip2clip.query.display import DEFAULT_MAX_ROWS

_ENGINES = ("duckdb", "polars")
_FORMATS = ("csv", "parquet")


@click.command("query")
@click.argument("sql")
@click.option("--results", "results_uri", required=True, help="results table (folder or s3://)")
@click.option("--run", "run_id", help="only this run's rows (default: every committed run)")
@click.option("--engine", type=click.Choice(_ENGINES), default="duckdb", show_default=True)
@click.option("--output", "-o", help="write every row to this .csv/.parquet file or URI")
@click.option("--format", "output_format", type=click.Choice(_FORMATS), help="output format")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_ROWS,
    show_default=True,
    help="rows printed (not a limit on --output)",
)
@click.option("--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)")
def query(
    sql: str,
    results_uri: str,
    run_id: str | None,
    engine: str,
    output: str | None,
    output_format: str | None,
    limit: int,
    endpoint_url: str | None,
) -> None:
    """Run SQL over the view `results` (committed rows only) and print or export the rows.

    \b
    Example:
      vip2clip query "SELECT source_uri, image_score FROM results
                      ORDER BY image_score DESC LIMIT 10" --results s3://bucket/results
    """
    from vip2clip.query import format_for, render_preview, run_query, take_preview, write_rows
    from vip2clip.results import check_run_id
    from vip2clip.storage import StorageConfig

    storage = StorageConfig(endpoint_url=endpoint_url)
    if run_id is not None:
        check_run_id(run_id)
    target_format = format_for(output, output_format) if output else None
    with run_query(sql, results_uri, engine=engine, run_id=run_id, storage=storage) as rows:
        if output is None or target_format is None:
            click.echo(render_preview(take_preview(rows, limit)), nl=False)
            return
        count = write_rows(rows, output, target_format, storage)
    click.echo(f"wrote {count} row{'' if count == 1 else 's'} to {output}")
