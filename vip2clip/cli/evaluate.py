"""``vip2clip evaluate``: detector + labelled dataset -> the paper-style metrics table."""

from __future__ import annotations

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

# CLI option -> dotted key of EvaluateConfig (options override the YAML file, --set overrides
# both); the detector options are in vip2clip.cli.options.DETECTOR_OPTION_KEYS
_OPTION_KEYS = {
    "dataset_format": "dataset.format",
    "split": "dataset.split",
    "classes": "dataset.classes",
    "on_bad_entry": "dataset.on_bad_entry",
    "output": "output",
    "batch_size": "batch_size",
    "ray_address": "ray_address",
    "num_actors": "num_actors",
    "gpus_per_actor": "gpus_per_actor",
    "aupro_method": "aupro_method",
}


@click.command("evaluate")
@click.argument("dataset")
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), help="EvaluateConfig YAML"
)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="config override")
@click.option("--format", "dataset_format", type=click.Choice(["mvtec", "visa", "meta", "folder"]))
@click.option("--split", type=click.Choice(["train", "test"]))
@click.option("--classes", help="comma-separated classes (default: all)")
@click.option("--on-bad-entry", type=click.Choice(["error", "skip"]))
@detector_options
@click.option("--output", "-o", help="folder or URI prefix for metrics.md and metrics.json")
@click.option("--batch-size", type=int)
@click.option("--ray-address", help="score on this Ray cluster (Ray Data actor pool)")
@click.option("--num-actors", type=int)
@click.option("--gpus-per-actor", help="GPUs per scoring actor, or 'auto'")
@click.option("--aupro-method", type=click.Choice(["research", "anomalib"]))
@click.option("--write-thresholds", is_flag=True, help="store F1-max thresholds in the learner")
@click.option("--no-progress", is_flag=True, help="no progress bar")
def evaluate(
    dataset: str,
    config_path: Path | None,
    overrides: tuple[str, ...],
    write_thresholds: bool,
    no_progress: bool,
    **options: Any,
) -> None:
    """Score DATASET (local path or s3:// URI) and print image/pixel metrics per class."""
    from vip2clip.config import load_config
    from vip2clip.eval.evaluate import EvaluateConfig
    from vip2clip.eval.evaluate import evaluate as run_evaluation
    from vip2clip.eval.table import render_markdown

    data = read_yaml(config_path) if config_path else {}
    set_dotted(data, "dataset.uri", dataset)
    if options.get("classes"):
        options["classes"] = [c.strip() for c in options["classes"].split(",") if c.strip()]
    apply_options(data, options, _OPTION_KEYS)
    apply_detector_options(data, options)
    if write_thresholds:
        set_dotted(data, "write_thresholds", True)
    if no_progress:
        set_dotted(data, "progress", False)
    config = load_config(EvaluateConfig, None, overrides, base=data)
    result = run_evaluation(config)
    click.echo(render_markdown(result.report), nl=False)
    _echo_footer(result)


def _echo_footer(result: Any) -> None:
    click.echo(f"scored {result.n_scored} images; {result.skipped.summary()}")
    for uri in result.report_uris:
        click.echo(f"wrote {uri}")
    if result.thresholds_written:
        t = result.report.thresholds
        click.echo(f"thresholds written: image {t.image:.6g}, pixel {t.pixel:.6g}")
