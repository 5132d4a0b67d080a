"""``vip2clip demo``: the offline end-to-end demo (the README's main command)."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--workdir", default="demo-output", show_default=True, help="local output folder")
@click.option(
    "--storage",
    type=click.Choice(["s3", "local"]),
    default="s3",
    show_default=True,
    help="s3: embedded S3 endpoint on 127.0.0.1; local: folders under --workdir",
)
@click.option("--archive-count", default=120, show_default=True, help="images in the archive")
@click.option("--epochs", default=3, show_default=True)
@click.option("--seed", default=0, show_default=True)
@click.option("--backbone-weights", default=None, help="real CLIP weights (path or s3:// URI)")
@click.option("--backbone-model", default=None, help="open_clip name of those weights")
@click.option("--learner", default=None, help="trained learner: skips training and evaluation")
@click.option("--source", default=None, help="score these images instead of the archive")
@click.option("--image-size", default=None, type=int, help="default: 112 (tiny), 518 (real)")
def demo(
    workdir: str,
    storage: str,
    archive_count: int,
    epochs: int,
    seed: int,
    backbone_weights: str | None,
    backbone_model: str | None,
    learner: str | None,
    source: str | None,
    image_size: int | None,
) -> None:
    """Run everything offline on this machine: Ray cluster, S3, training, scoring, SQL, report."""
    from vip2clip.config import load_config
    from vip2clip.demo import DemoConfig, run_demo
    from vip2clip.model.constants import DEFAULT_IMAGE_SIZE

    settings: dict[str, object] = {
        "workdir": workdir,
        "storage": storage,
        "archive_count": archive_count,
        "epochs": epochs,
        "seed": seed,
        "learner": learner,
        "source": source,
    }
    if backbone_weights:
        settings["backbone"] = {
            "model": backbone_model,
            "pretrained": None,
            "weights": backbone_weights,
        }
        settings["image_size"] = image_size or DEFAULT_IMAGE_SIZE
    elif image_size:
        settings["image_size"] = image_size
    # load_config reports an invalid setting in one line, without echoing its value
    result = run_demo(load_config(DemoConfig, base=settings), echo=click.echo)
    click.echo(
        f"\nDone. learner: {result.learner_uri}\n      report:  {result.report_path}\n"
        f"      results: table {result.table} in {result.pyiceberg_home} (run {result.run_id}: "
        f"{result.rows_ok} ok, {result.rows_error} errors)"
    )
