"""``vip2clip score``: score an archive (s3:// prefix, folder or manifest) into an Iceberg table."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import click

from vip2clip.cli.options import (
    apply_detector_options,
    apply_options,
    detector_options,
    set_dotted,
)
from vip2clip.config import read_yaml

# CLI option -> dotted key of ScoringConfig (options override the YAML file, --set overrides
# both); the detector options are in vip2clip.cli.options.DETECTOR_OPTION_KEYS
_OPTION_KEYS = {
    "mode": "mode",
    "run_id": "run_id",
    "run_date": "run_date",
    "batch_size": "batch_size",
    "num_actors": "num_actors",
    "gpus_per_actor": "gpus_per_actor",
    "ray_address": "ray_address",
    "catalog": "catalog",
    "commit_every": "commit_every",
    "endpoint_url": "storage.endpoint_url",
    "region": "storage.region",
}


@click.command("score")
@click.argument("source")
@click.argument("table")
@click.option("--config", "config_path", type=click.Path(path_type=Path), help="ScoringConfig YAML")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="config override")
@click.option(
    "--incremental/--full",
    "incremental",
    default=None,
    help="skip objects this model already scored (default) / rescore everything",
)
@click.option(
    "--catalog", help="pyiceberg catalog name (default: pyiceberg's default, else embedded)"
)
@click.option("--commit-every", type=click.IntRange(min=1), help="commit a snapshot every N rows")
@click.option("--run-id", help="default: derived from date, mode, source and detector")
@click.option("--run-date", help="partition date YYYY-MM-DD (default: today UTC)")
@detector_options
@click.option("--batch-size", type=int, help="images per inference batch")
@click.option("--num-actors", type=int, help="inference actors")
@click.option("--gpus-per-actor", help="GPUs per inference actor, or 'auto'")
@click.option("--ray-address", help="Ray cluster (default: RAY_ADDRESS, else a local instance)")
@click.option("--endpoint-url", help="S3-compatible endpoint (default: AWS_ENDPOINT_URL)")
@click.option("--region", help="S3 region (default: the AWS chain's)")
@click.option("--no-progress", is_flag=True, help="no Ray Data progress bars")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def score(
    source: str,
    table: str,
    config_path: Path | None,
    overrides: tuple[str, ...],
    incremental: bool | None,
    no_progress: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Score every image under SOURCE and commit one row per object to TABLE.

    SOURCE is an s3://bucket/prefix, a local folder, or a manifest (.txt/.csv/.parquet
    of URIs); TABLE is the Iceberg results table `namespace.table`, created on first use.
    Snapshots are committed as rows arrive; running the same command again resumes.
    """
    from vip2clip.config import load_config
    from vip2clip.scoring import ScoringConfig, run_scoring

    data = read_yaml(config_path) if config_path else {}
    set_dotted(data, "source", source)
    set_dotted(data, "table", table)
    if incremental is not None:
        options["mode"] = "incremental" if incremental else "full"
    apply_options(data, options, _OPTION_KEYS)
    apply_detector_options(data, options)
    if no_progress:
        set_dotted(data, "progress", False)
    config = load_config(ScoringConfig, None, overrides, base=data)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    click.echo(f"config: {json.dumps(config.safe_dump(), sort_keys=True)}", err=True)
    summary = run_scoring(config)
    if as_json:
        click.echo(json.dumps(summary.to_dict(), sort_keys=True))
    else:
        click.echo(summary.line())
