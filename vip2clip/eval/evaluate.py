"""Evaluate a detector on a labelled dataset: score, compute metrics on the driver, report.

Scoring goes through :func:`vip2clip.eval.scoring.score_samples` (``Detector.score_pixels``
in batches), either in this process or — with ``ray_address`` — in a Ray Data actor pool
(``map_batches`` with ``ActorPoolStrategy``), streamed back batch by batch into the
:class:`~vip2clip.eval.report.EvaluationAccumulator`, so driver memory stays at one batch
plus the histograms.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field, PositiveInt
from tqdm import tqdm

from vip2clip.config import BatchSize, FrozenConfig
from vip2clip.data.datasets import (
    BadEntryError,
    DatasetSpec,
    Sample,
    SkippedEntries,
    list_samples,
)
from vip2clip.data.datasets.spec import handle_bad_entry
from vip2clip.eval.aupro import AuproMethod
from vip2clip.eval.histogram import DEFAULT_BINS
from vip2clip.eval.report import EvaluationAccumulator, EvaluationReport
from vip2clip.eval.scoring import Batch, SampleScorer, score_samples
from vip2clip.eval.table import write_report
from vip2clip.eval.thresholds import write_thresholds
from vip2clip.model.detector import DetectorConfig
from vip2clip.ops.connect import connect_ray
from vip2clip.scoring.sizing import plan_actors
from vip2clip.storage import SafeUri, StorageConfig

if TYPE_CHECKING:
    from vip2clip.model import Detector

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 8  # the official test batch size


class EvaluateConfig(FrozenConfig):
    """Detector + dataset + where the report goes and how scoring is distributed."""

    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    dataset: DatasetSpec
    output: SafeUri | None = Field(default=None, description="folder/prefix for metrics.md/.json")
    storage: StorageConfig = Field(default_factory=StorageConfig)
    batch_size: BatchSize = DEFAULT_BATCH_SIZE
    ray_address: str | None = Field(
        default=None, description="score on this Ray cluster ('auto' inside a job); None = here"
    )
    num_actors: PositiveInt | Literal["auto"] = Field(
        default="auto",
        description="scoring actors on the Ray cluster; auto: one per GPU, else half the CPUs",
    )
    cpus_per_actor: float = Field(default=1.0, gt=0)
    gpus_per_actor: float | Literal["auto"] = Field(
        default="auto", description="auto: 1 when the cluster has GPUs, else CPU inference"
    )
    aupro_method: AuproMethod = "research"
    histogram_bins: int = Field(default=DEFAULT_BINS, ge=2)
    write_thresholds: bool = Field(
        default=False, description="store the F1-max thresholds in the learner checkpoint"
    )
    progress: bool = True


@dataclass(frozen=True)
class EvaluationResult:
    """What :func:`evaluate` produced."""

    report: EvaluationReport
    n_scored: int
    skipped: SkippedEntries = field(default_factory=SkippedEntries)
    report_uris: tuple[str, ...] = ()
    thresholds_written: bool = False


def evaluate(config: EvaluateConfig) -> EvaluationResult:
    """Score ``config.dataset`` with ``config.detector`` and compute the paper-style metrics."""
    skipped = SkippedEntries()
    samples = list_samples(config.dataset, config.storage, skipped)
    accumulator = EvaluationAccumulator(config.histogram_bins, config.aupro_method)
    n_scored = 0
    with tqdm(total=len(samples), desc="evaluate", unit="img", disable=not config.progress) as bar:
        for batch in _scored_batches(config, samples):
            n_scored += _accumulate(accumulator, batch, config.dataset, skipped)
            bar.update(len(batch["ok"]))
    report = accumulator.report()
    uris = write_report(report, config.output, config.storage) if config.output else ()
    if config.write_thresholds:
        write_thresholds(config.detector.learner, report.thresholds, config.storage)
    return EvaluationResult(report, n_scored, skipped, tuple(uris), config.write_thresholds)


def _scored_batches(config: EvaluateConfig, samples: Sequence[Sample]) -> Iterator[Batch]:
    if config.ray_address is None:
        return _score_locally(config, samples)
    return _score_on_ray(config, samples, config.ray_address)


def _score_locally(config: EvaluateConfig, samples: Sequence[Sample]) -> Iterator[Batch]:
    from vip2clip.model import load_detector

    detector: Detector = load_detector(config.detector, config.storage)
    for start in range(0, len(samples), config.batch_size):
        yield score_samples(detector, samples[start : start + config.batch_size], config.storage)


def _score_on_ray(
    config: EvaluateConfig, samples: Sequence[Sample], address: str
) -> Iterator[Batch]:
    connect_ray(address, log_to_driver=False)  # before importing Ray (see connect_ray)
    import ray

    actors = plan_actors(
        ray.cluster_resources(),
        num_actors=config.num_actors,
        gpus_per_actor=config.gpus_per_actor,
        cpus_per_actor=config.cpus_per_actor,
    )
    dataset = ray.data.from_items([s.as_row() for s in samples]).map_batches(
        SampleScorer,
        fn_constructor_kwargs={"detector": config.detector, "storage": config.storage},
        batch_size=config.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors.num_actors),
        num_cpus=actors.cpus_per_actor,
        num_gpus=actors.gpus_per_actor,
    )
    yield from dataset.iter_batches(batch_size=config.batch_size, batch_format="numpy")


def _accumulate(
    accumulator: EvaluationAccumulator, batch: Batch, spec: DatasetSpec, skipped: SkippedEntries
) -> int:
    """Add a scored batch's good rows; apply the bad-entry policy to the others."""
    ok = np.asarray(batch["ok"], dtype=bool)
    for i in np.flatnonzero(~ok):
        error = BadEntryError(
            str(batch["image_uri"][i]), str(batch["error_reason"][i]), str(batch["error_detail"][i])
        )
        handle_bad_entry(error, spec.on_bad_entry, skipped)
    if ok.any():
        accumulator.add(
            [str(name) for name in batch["class_name"][ok]],
            batch["label"][ok],
            batch["score"][ok],
            batch["anomaly_map"][ok],
            batch["mask"][ok],
        )
    return int(ok.sum())
