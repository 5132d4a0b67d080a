"""Live job metrics recorded from Ray workers, actors and drivers.

The metrics are ``ray.util.metrics`` instruments: every Ray node's metrics agent
exports them, and Prometheus finds the agents through Ray's service-discovery
file (see ``deploy/prometheus/prometheus.yml``). Ray prefixes every exported
name with ``ray_`` (``vip2clip_objects`` is scraped as ``ray_vip2clip_objects_total``);
``docs/metrics.md`` lists each one.

Instruments are created lazily, once per process, on first use. Outside Ray (no
``ray.init`` in this process) every call is a cheap no-op, so library code can
record unconditionally. Recording never raises for a backend failure: metrics
must not break a job. Labels are bounded: job kind, run id, model id, plus a
stage from a fixed set or an error reason code (capped per process).
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

logger = logging.getLogger(__name__)

METRIC_PREFIX = "vip2clip_"
RAY_EXPORT_PREFIX = "ray_"  # added by Ray's metrics agent to every user metric

JOB_LABELS = ("job_kind", "run_id", "model_id")
OBJECT_STAGES = ("listed", "read", "decoded", "scored", "written", "skipped")
LATENCY_STAGES = ("read", "decode", "inference", "postprocess", "write")
TRAIN_JOB_KIND = "train"

# Error reasons are stable short codes (e.g. ``decode_failed``); anything else,
# and any reason past the per-process cap, is recorded as OTHER_REASON.
OTHER_REASON = "other"
MAX_ERROR_REASONS = 32
_REASON_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,47}$")

# Bucket upper bounds. Latencies span a cached small read (ms) to a large GPU
# batch (tens of seconds); batch sizes are powers of two up to the largest
# batch an actor is configured with in practice.
LATENCY_BUCKETS_S = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)
BATCH_SIZE_BUCKETS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0)
STEP_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class MetricKind(StrEnum):
    """The Ray instrument behind a metric."""

    COUNTER = "counter"
    GAUGE = "gauge"
    HISTOGRAM = "histogram"


@dataclass(frozen=True)
class MetricSpec:
    """Name, type and labels of one live metric (the single source for code and docs)."""

    name: str
    kind: MetricKind
    description: str
    extra_labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label key the metric carries (job labels first)."""
        return JOB_LABELS + self.extra_labels

    @property
    def exported_name(self) -> str:
        """The series name as Prometheus scrapes it from Ray (counters get ``_total``)."""
        suffix = "_total" if self.kind is MetricKind.COUNTER else ""
        return f"{RAY_EXPORT_PREFIX}{self.name}{suffix}"


def _spec(
    name: str, kind: MetricKind, description: str, *extra: str, buckets: tuple[float, ...] = ()
) -> MetricSpec:
    return MetricSpec(METRIC_PREFIX + name, kind, description, tuple(extra), buckets)


OBJECTS = _spec("objects", MetricKind.COUNTER, "Objects that reached a pipeline stage.", "stage")
ERRORS = _spec(
    "errors", MetricKind.COUNTER, "Objects that ended as error rows, by reason.", "reason"
)
BYTES_READ = _spec("bytes_read", MetricKind.COUNTER, "Bytes read from the source storage.")
STAGE_LATENCY = _spec(
    "stage_latency_seconds",
    MetricKind.HISTOGRAM,
    "Wall time of one unit of work of a stage (one object or one batch).",
    "stage",
    buckets=LATENCY_BUCKETS_S,
)
BATCH_SIZE = _spec(
    "batch_size", MetricKind.HISTOGRAM, "Images per inference batch.", buckets=BATCH_SIZE_BUCKETS
)
ACTORS_BUSY = _spec(
    "actors_busy",
    MetricKind.GAUGE,
    "Inference actors busy on a batch right now (sum over workers).",
)
TRAIN_STEP = _spec(
    "train_step_seconds",
    MetricKind.HISTOGRAM,
    "Wall time of one training step.",
    buckets=STEP_BUCKETS_S,
)
TRAIN_STEPS = _spec("train_steps", MetricKind.COUNTER, "Training steps completed.")
TRAIN_LOSS = _spec("train_loss", MetricKind.GAUGE, "Total loss of the latest training step.")
TRAIN_IMAGE_LOSS = _spec(
    "train_image_loss",
    MetricKind.GAUGE,
    "Image-level (cross-entropy) loss of the latest training step.",
)
TRAIN_SAMPLES = _spec("train_samples", MetricKind.COUNTER, "Training samples processed.")
TRAIN_SAMPLES_PER_S = _spec(
    "train_samples_per_second", MetricKind.GAUGE, "Samples per second of the latest training step."
)
TRAIN_EPOCH = _spec("train_epoch", MetricKind.GAUGE, "Current training epoch (0-based).")
TRAIN_CHECKPOINTS = _spec("train_checkpoints", MetricKind.COUNTER, "Learner checkpoints written.")

PIPELINE_METRICS = (OBJECTS, ERRORS, BYTES_READ, STAGE_LATENCY, BATCH_SIZE, ACTORS_BUSY)
TRAINING_METRICS = (
    TRAIN_STEP,
    TRAIN_STEPS,
    TRAIN_LOSS,
    TRAIN_IMAGE_LOSS,
    TRAIN_SAMPLES,
    TRAIN_SAMPLES_PER_S,
    TRAIN_EPOCH,
    TRAIN_CHECKPOINTS,
)
ALL_METRICS = PIPELINE_METRICS + TRAINING_METRICS


class _Registry:
    """Per-process Ray instruments, created on first use; ``None`` outside Ray."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._instruments: dict[str, Any] = {}
        self._failed: set[str] = set()
        self._reasons: set[str] = set()
        self._busy: dict[tuple[str, ...], int] = {}

    def instrument(self, spec: MetricSpec) -> Any | None:
        if not _ray_initialized():
            return None
        with self._lock:
            found = self._instruments.get(spec.name)
            if found is None:
                found = self._instruments[spec.name] = _create(spec)
            return found

    def record(self, spec: MetricSpec, value: float, tags: dict[str, str]) -> None:
        """Apply ``value`` to the metric; log (once per metric) instead of raising."""
        try:
            amount = float(value)  # Ray accepts only int/float, not numpy scalars
            if spec.kind is MetricKind.COUNTER and amount == 0:
                return  # Ray counters refuse 0; adding nothing is a no-op anyway
            instrument = self.instrument(spec)
            if instrument is None:
                return
            if spec.kind is MetricKind.COUNTER:
                instrument.inc(amount, tags=tags)
            elif spec.kind is MetricKind.GAUGE:
                instrument.set(amount, tags=tags)
            else:
                instrument.observe(amount, tags=tags)
        except Exception as exc:  # metrics must never break the job
            if spec.name not in self._failed:
                self._failed.add(spec.name)
                logger.warning("could not record metric %s: %s", spec.name, exc)

    def bounded_reason(self, reason: str) -> str:
        """``reason`` if it is a valid code within the per-process cap, else ``other``."""
        if not _REASON_PATTERN.match(reason):
            return OTHER_REASON
        with self._lock:
            if reason in self._reasons:
                return reason
            if len(self._reasons) >= MAX_ERROR_REASONS:
                return OTHER_REASON
            self._reasons.add(reason)
            return reason

    def add_busy(self, key: tuple[str, ...], delta: int) -> int:
        with self._lock:
            value = self._busy.get(key, 0) + delta
            self._busy[key] = value
            return value


def _ray_initialized() -> bool:
    # Only look at Ray if this process already imported it: importing Ray just to
    # find out it is not running would cost seconds in every plain CLI call.
    ray = sys.modules.get("ray")
    return ray is not None and bool(ray.is_initialized())


def _create(spec: MetricSpec) -> Any:
    from ray.util import metrics

    if spec.kind is MetricKind.COUNTER:
        return metrics.Counter(spec.name, description=spec.description, tag_keys=spec.labels)
    if spec.kind is MetricKind.GAUGE:
        return metrics.Gauge(spec.name, description=spec.description, tag_keys=spec.labels)
    return metrics.Histogram(
        spec.name,
        description=spec.description,
        boundaries=list(spec.buckets),
        tag_keys=spec.labels,
    )


_REGISTRY = _Registry()


def _check_stage(stage: str, allowed: tuple[str, ...]) -> None:
    if stage not in allowed:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(allowed)}")


def _check_count(n: float) -> None:
    if n < 0:
        raise ValueError(f"a count cannot be negative, got {n}")


class PipelineMetrics:
    """Live counters and histograms of one scoring (or evaluation) run.

    Create one per process (e.g. in an actor's ``__init__``); methods are cheap
    and thread-safe, and do nothing outside Ray. Counts may be 0 (nothing is
    recorded) or numpy integers; a negative count or an unknown stage raises
    ``ValueError`` (a programming error, unlike backend failures, which are logged).
    """

    def __init__(self, job_kind: str, run_id: str, model_id: str) -> None:
        self._tags = {"job_kind": job_kind, "run_id": run_id, "model_id": model_id}

    @property
    def tags(self) -> dict[str, str]:
        """The job labels every series of this run carries."""
        return dict(self._tags)

    def objects(self, stage: str, n: int = 1) -> None:
        """Count ``n`` objects reaching ``stage`` (one of :data:`OBJECT_STAGES`)."""
        _check_stage(stage, OBJECT_STAGES)
        _check_count(n)
        _REGISTRY.record(OBJECTS, n, {**self._tags, "stage": stage})

    def error(self, reason: str, n: int = 1) -> None:
        """Count ``n`` objects that ended as error rows with the short code ``reason``."""
        _check_count(n)
        bounded = _REGISTRY.bounded_reason(reason)
        _REGISTRY.record(ERRORS, n, {**self._tags, "reason": bounded})

    def bytes_read(self, n: int) -> None:
        """Count ``n`` bytes read from source storage."""
        _check_count(n)
        _REGISTRY.record(BYTES_READ, n, self._tags)

    def observe_latency(self, stage: str, seconds: float) -> None:
        """Record the wall time of one unit of ``stage`` (one of :data:`LATENCY_STAGES`)."""
        _check_stage(stage, LATENCY_STAGES)
        _REGISTRY.record(STAGE_LATENCY, seconds, {**self._tags, "stage": stage})

    def batch_size(self, n: int) -> None:
        """Record the number of images in one inference batch."""
        _REGISTRY.record(BATCH_SIZE, n, self._tags)

    def actors_busy(self, delta: int) -> None:
        """Mark this process's actor busy (``+1``) or idle again (``-1``)."""
        value = _REGISTRY.add_busy(tuple(self._tags.values()), delta)
        _REGISTRY.record(ACTORS_BUSY, value, self._tags)


class TrainingMetrics:
    """Live metrics of one training run, recorded by each training worker."""

    def __init__(self, run_id: str, model_id: str) -> None:
        self._tags = {"job_kind": TRAIN_JOB_KIND, "run_id": run_id, "model_id": model_id}

    @property
    def tags(self) -> dict[str, str]:
        """The job labels every series of this run carries."""
        return dict(self._tags)

    def step(self, seconds: float, loss: float, image_loss: float, samples: int) -> None:
        """Record one optimisation step over ``samples`` samples that took ``seconds``."""
        _check_count(samples)
        _REGISTRY.record(TRAIN_STEP, seconds, self._tags)
        _REGISTRY.record(TRAIN_STEPS, 1, self._tags)
        _REGISTRY.record(TRAIN_LOSS, loss, self._tags)
        _REGISTRY.record(TRAIN_IMAGE_LOSS, image_loss, self._tags)
        _REGISTRY.record(TRAIN_SAMPLES, samples, self._tags)
        if seconds > 0:
            _REGISTRY.record(TRAIN_SAMPLES_PER_S, samples / seconds, self._tags)

    def epoch(self, epoch: int) -> None:
        """Record the epoch now being trained."""
        _REGISTRY.record(TRAIN_EPOCH, epoch, self._tags)

    def checkpoint_written(self) -> None:
        """Count one learner checkpoint written."""
        _REGISTRY.record(TRAIN_CHECKPOINTS, 1, self._tags)
