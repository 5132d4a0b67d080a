"""``vip2clip train``: train the ViP²-CLIP learner on a Ray cluster (or a local Ray).

The run is described by a YAML :class:`~vip2clip.training.config.TrainingConfig` plus
``--set key.path=value`` overrides; the final learner's URI is printed on stdout, ready
for ``vip2clip score`` / ``evaluate`` (``--set detector.learner=<uri>``).
"""

from __future__ import annotations

from pathlib import Path

import click

ADDRESS_ENV = "RAY_ADDRESS"


@click.command("train")
@click.argument("config_file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config entry, e.g. --set optimizer.epochs=3 (repeatable).",
)
@click.option(
    "--ray-address",
    default=None,
    help=f"Ray cluster to run on (default: ${ADDRESS_ENV}, else a local Ray started here).",
)
@click.option("--print-config", is_flag=True, help="Print the resolved config and exit.")
def train(
    config_file: Path | None,
    overrides: tuple[str, ...],
    ray_address: str | None,
    print_config: bool,
) -> None:
    """Train a learner from CONFIG_FILE (YAML) and --set overrides; print its URI."""
    from vip2clip.training.config import load_training_config

    config = load_training_config(config_file, overrides)
    if print_config:
        click.echo(config.model_dump_json(indent=2))
        return
    from vip2clip.ops.connect import connect_ray

    connect_ray(ray_address)  # first: a local Ray is confined only if Ray is not imported yet
    from ray.data import DataContext

    from vip2clip.training.trainer import run_training

    DataContext.get_current().enable_progress_bars = False
    click.echo(
        f"training run {config.run_name}: {config.scaling.workers} worker(s), "
        f"{config.optimizer.epochs} epochs, checkpoints under {config.storage_uri}",
        err=True,
    )
    result = run_training(config)
    metrics = result.metrics
    if metrics:
        click.echo(
            f"done: loss {metrics.get('loss', float('nan')):.4f}, "
            f"image loss {metrics.get('image_loss', float('nan')):.4f}",
            err=True,
        )
    click.echo(result.learner_uri)
