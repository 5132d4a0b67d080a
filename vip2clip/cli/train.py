"""``vip2clip train``: train the ViP²-CLIP learner on a Ray cluster (or a local Ray).

The run is described by a YAML :class:`~vip2clip.training.config.TrainingConfig` plus
``--set key.path=value`` overrides; the final learner's URI is printed on stdout, ready
for ``vip2clip score`` / ``evaluate`` (``--set detector.learner=<uri>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from vip2clip.errors import Vip2ClipError

if TYPE_CHECKING:
    from vip2clip.model import BackboneSpec
    from vip2clip.storage import StorageConfig
    from vip2clip.training.config import TrainingConfig

ADDRESS_ENV = "RAY_ADDRESS"
PROBE_CPUS = 1  # the backbone check runs as one CPU task, like scoring's model probe


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
    from vip2clip.storage import check_uri
    from vip2clip.training.config import load_training_config

    config = load_training_config(config_file, overrides)
    check_uri(config.storage_uri)  # credentials in it: refused before anything prints it
    if print_config:
        click.echo(config.model_dump_json(indent=2))
        return
    from vip2clip.ops.connect import connect_ray

    connect_ray(ray_address)  # first: a local Ray is confined only if Ray is not imported yet
    from ray.data import DataContext

    from vip2clip.training.trainer import run_training

    DataContext.get_current().enable_progress_bars = False
    check_backbone_weights(config)
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


def check_backbone_weights(config: TrainingConfig) -> None:
    """Load a backbone weights file once in a CPU task before training starts: a bad or
    refused file ends the run here with its one-line reason instead of failing every
    worker through Ray Train's retries."""
    if not config.detector.backbone.weights:
        return
    import ray

    probe = ray.remote(num_cpus=PROBE_CPUS, num_gpus=0, max_retries=0)(backbone_identity)
    try:
        ray.get(probe.remote(config.detector.backbone, config.storage))
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, Vip2ClipError):
            raise exc.cause from None
        raise


def backbone_identity(spec: BackboneSpec, storage: StorageConfig) -> str:
    """The identity of the backbone ``spec`` loads (raises its user error when it cannot)."""
    from vip2clip.model import load_backbone

    return load_backbone(spec, storage).identity
