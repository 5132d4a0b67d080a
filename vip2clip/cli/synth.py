"""``vip2clip synth``: write a synthetic anomaly dataset or an unlabelled night archive."""

from __future__ import annotations

import csv
import io
import time
from typing import TYPE_CHECKING

import click

from vip2clip.errors import ConfigError

if TYPE_CHECKING:
    from vip2clip.data.synthetic import ArchiveEntry

LAYOUT_CHOICES = ("mvtec", "visa", "meta", "folder", "archive")
DEFAULT_DATASET_SIZE = 128
DEFAULT_ARCHIVE_SIZE = 256
DEFAULT_DATASET_COUNT = 10
DEFAULT_ARCHIVE_COUNT = 100
DEFAULT_DEFECT_RATE = 0.1


def _names(text: str | None, known: tuple[str, ...], what: str) -> tuple[str, ...]:
    if text is None:
        return known
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ConfigError(
            f"unknown {what} {', '.join(unknown) or '(none given)'}; choose from {', '.join(known)}"
        )
    return names


@click.command("synth")
@click.argument("output")
@click.option(
    "--layout",
    type=click.Choice(LAYOUT_CHOICES),
    default="mvtec",
    show_default=True,
    help="dataset layout, or 'archive': a flat unlabelled folder of images",
)
@click.option("--domains", help="comma-separated domains (default: all)")
@click.option("--defects", help="comma-separated defect kinds (default: all)")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--size", type=click.IntRange(min=32), help="image side in pixels [128; archive 256]")
@click.option(
    "--count",
    type=click.IntRange(min=0),
    help="archive: number of images [100]; datasets: images per domain in each of "
    "train-good, test-good, test-bad [10]",
)
@click.option("--train-good", type=click.IntRange(min=0), help="datasets: train images per domain")
@click.option("--test-good", type=click.IntRange(min=0), help="datasets: good test images")
@click.option("--test-bad", type=click.IntRange(min=0), help="datasets: defective test images")
@click.option(
    "--defect-rate",
    type=click.FloatRange(0.0, 1.0),
    default=DEFAULT_DEFECT_RATE,
    show_default=True,
    help="archive: share of defective images",
)
@click.option("--truth", help="archive: also write the ground truth as CSV to this path or URI")
def synth(
    output: str,
    layout: str,
    domains: str | None,
    defects: str | None,
    seed: int,
    size: int | None,
    count: int | None,
    train_good: int | None,
    test_good: int | None,
    test_bad: int | None,
    defect_rate: float,
    truth: str | None,
) -> None:
    """Write synthetic anomaly images (exact masks, seeded) to OUTPUT (path or s3:// URI)."""
    from vip2clip.data import synthetic

    domain_names = _names(domains, synthetic.DOMAINS, "domain")
    started = time.perf_counter()
    if layout == "archive":
        entries = synthetic.generate_archive(
            output,
            count=DEFAULT_ARCHIVE_COUNT if count is None else count,
            domains=domain_names,
            image_size=size or DEFAULT_ARCHIVE_SIZE,
            defect_rate=defect_rate,
            seed=seed,
        )
        if truth:
            _write_truth(truth, entries)
        bad = sum(e.defect is not None for e in entries)
        summary = f"{len(entries)} images ({bad} defective)"
    else:
        per_group = DEFAULT_DATASET_COUNT if count is None else count
        result = synthetic.generate_dataset(
            output,
            domains=domain_names,
            defects=_names(defects, synthetic.DEFECTS, "defect kind"),
            n_train_good=per_group if train_good is None else train_good,
            n_test_good=per_group if test_good is None else test_good,
            n_test_bad=per_group if test_bad is None else test_bad,
            image_size=size or DEFAULT_DATASET_SIZE,
            seed=seed,
            layout=layout,  # type: ignore[arg-type]  # click.Choice checked it
        )
        summary = f"{result.files} files, classes {', '.join(result.domains)} ({layout} layout)"
    elapsed = time.perf_counter() - started
    click.echo(f"wrote {summary} to {output} in {elapsed:.1f} s")


def _write_truth(uri: str, entries: list[ArchiveEntry]) -> None:
    from vip2clip.storage import write_bytes

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["uri", "domain", "defect", "width", "height"])
    for e in entries:
        writer.writerow([e.uri, e.domain, e.defect or "", e.width, e.height])
    write_bytes(uri, buffer.getvalue().encode())
