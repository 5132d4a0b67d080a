"""``vip2clip query``: SQL over a snapshot of the Iceberg results table."""

from __future__ import annotations

import click

from vip2clip.query.display import DEFAULT_MAX_ROWS

_ENGINES = ("duckdb", "polars")
_FORMATS = ("csv", "parquet")


@click.command("query")
@click.argument("sql")
@click.option("--table", required=True, help="results table, an Iceberg identifier namespace.table")
@click.option(
    "--catalog", help="pyiceberg catalog name (default: pyiceberg's default, else embedded)"
)
@click.option("--as-of", help="snapshot id or ISO time to read (default: the current snapshot)")
@click.option("--run", "run_id", help="only this run's rows (default: every run)")
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
@click.option(
    "--endpoint-url", help="S3-compatible endpoint of --output (default: AWS_ENDPOINT_URL)"
)
def query(
    sql: str,
    table: str,
    catalog: str | None,
    as_of: str | None,
    run_id: str | None,
    engine: str,
    output: str | None,
    output_format: str | None,
    limit: int,
    endpoint_url: str | None,
) -> None:
    """Run SQL over the view `results` (one committed snapshot) and print or export the rows.

    \b
    Example:
      vip2clip query "SELECT source_uri, image_score FROM results
                      ORDER BY image_score DESC LIMIT 10" --table vision.results
    """
    from vip2clip.query import (
        format_for,
        open_results,
        render_preview,
        run_query,
        take_preview,
        write_rows,
    )
    from vip2clip.results import check_identifier, check_run_id
    from vip2clip.storage import StorageConfig

    check_identifier(table)
    if run_id is not None:
        check_run_id(run_id)
    target_format = format_for(output, output_format) if output else None
    results = open_results(table, catalog)
    with run_query(sql, results, engine=engine, as_of=as_of, run_id=run_id) as rows:
        if output is None or target_format is None:
            click.echo(render_preview(take_preview(rows, limit)), nl=False)
            return
        count = write_rows(rows, output, target_format, StorageConfig(endpoint_url=endpoint_url))
    click.echo(f"wrote {count} row{'' if count == 1 else 's'} to {output}")
