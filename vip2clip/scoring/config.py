"""Typed configuration of a batch-scoring run."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime
from typing import Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from vip2clip.config import BatchSize, FrozenConfig, Probability
from vip2clip.data.decode import MAX_IMAGE_PIXELS_DEFAULT
from vip2clip.errors import ConfigError
from vip2clip.model import DetectorConfig
from vip2clip.results.catalog import check_catalog_name
from vip2clip.results.schema import RUN_ID_PATTERN
from vip2clip.results.table import check_identifier
from vip2clip.scoring.reads import MAX_OBJECT_BYTES_DEFAULT
from vip2clip.scoring.source import DEFAULT_PAGE_SIZE
from vip2clip.storage import SafeUri, StorageConfig, redact_userinfo
from vip2clip.telemetry.push import PushConfig

DEFAULT_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
# Without thresholds from the learner's metadata or the config, decisions use the
# midpoint of the [0, 1] score range: uncalibrated, but deterministic and recorded per row.
DEFAULT_IMAGE_THRESHOLD = 0.5
DEFAULT_PIXEL_THRESHOLD = 0.5
DEFAULT_ROWS_PER_FILE = 1000  # ~10-100 MB of Parquet (masks dominate); buffered before a write
# A 10 M-object night at ~300 objects/s commits ~100 snapshots of ~100 k rows: a killed
# driver loses at most 5 minutes, and the table gains ~100 small manifests a night
# (``vip2clip table maintain`` compacts them).
DEFAULT_COMMIT_EVERY = 100_000
DEFAULT_COMMIT_INTERVAL_S = 300.0
DEFAULT_READ_ATTEMPTS = 3
# Ray Data retries its tasks forever by default (max_retries=-1): an object that gets its
# read task killed for memory every time would stop the night. A few retries still ride
# out a lost node or a memory spike caused by something else.
DEFAULT_LOAD_TASK_MAX_RETRIES = 3
DEFAULT_JOB_NAME = "vip2clip-score"

ScoringMode = Literal["full", "incremental"]


class ScoringConfig(FrozenConfig):
    """Everything a scoring run needs; secrets never live here (AWS chain on each node)."""

    source: SafeUri = Field(description="s3://bucket/prefix, a local folder, or a manifest file")
    table: str = Field(description="results table, an Iceberg identifier namespace.table")
    catalog: str | None = Field(
        default=None,
        description="pyiceberg catalog name (.pyiceberg.yaml / PYICEBERG_CATALOG__*); "
        "default: pyiceberg's default catalog, else the embedded SQLite catalog",
    )
    commit_every: int = Field(
        default=DEFAULT_COMMIT_EVERY, ge=1, description="commit a snapshot every N rows"
    )
    commit_interval_s: float = Field(
        default=DEFAULT_COMMIT_INTERVAL_S,
        gt=0,
        description="... and at least every T seconds while rows arrive",
    )
    extensions: tuple[str, ...] = Field(
        default=DEFAULT_EXTENSIONS, description="listing filter (case-insensitive)"
    )
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    mode: ScoringMode = Field(
        default="incremental", description="incremental: skip objects already scored by this model"
    )
    run_id: str | None = Field(
        default=None, description="default: derived from date, mode, source and detector"
    )
    run_date: date | None = Field(default=None, description="partition date; default: today UTC")
    batch_size: BatchSize = Field(default=8, description="images per inference batch")
    read_batch_size: BatchSize = Field(default=16, description="objects per read/decode task")
    num_actors: PositiveInt | Literal["auto"] = Field(
        default="auto",
        description="inference actors (pool maximum); auto: one per GPU, else half the CPUs",
    )
    min_actors: int | None = Field(
        default=None,
        ge=1,
        description=(
            "pool minimum; default 1: an elastic pool, which shrinks instead of waiting "
            "forever for resources a lost node took with it"
        ),
    )
    gpus_per_actor: float | Literal["auto"] = Field(
        default="auto", description="auto: 1 when the cluster has GPUs, else CPU inference"
    )
    cpus_per_actor: float = Field(default=1.0, gt=0, description="CPU threads per actor")
    max_pixels: int = Field(default=MAX_IMAGE_PIXELS_DEFAULT, ge=1, description="bomb limit")
    max_object_bytes: int = Field(
        default=MAX_OBJECT_BYTES_DEFAULT,
        ge=1,
        description="larger objects become too_large error rows (checked while streaming)",
    )
    load_task_max_retries: int = Field(
        default=DEFAULT_LOAD_TASK_MAX_RETRIES,
        ge=0,
        description="retries of a read/decode task whose worker died (OOM kill, lost node)",
    )
    load_task_memory: int | None = Field(
        default=None,
        ge=0,
        description="bytes reserved per read/decode task (default: from max_pixels)",
    )
    image_threshold: Probability | None = Field(
        default=None, description="decision threshold; default: learner metadata, else 0.5"
    )
    pixel_threshold: Probability | None = Field(
        default=None, description="mask threshold; default: learner metadata, else 0.5"
    )
    listing_page_size: int = Field(default=DEFAULT_PAGE_SIZE, ge=1, le=DEFAULT_PAGE_SIZE)
    rows_per_file: int = Field(default=DEFAULT_ROWS_PER_FILE, ge=1)
    read_attempts: int = Field(default=DEFAULT_READ_ATTEMPTS, ge=1)
    ray_address: str | None = Field(default=None, description="default: RAY_ADDRESS or local")
    progress: bool = Field(default=True, description="Ray Data progress bars")
    push: PushConfig = Field(
        default_factory=PushConfig, description="job summary Pushgateway (url: env default)"
    )
    job_name: str = Field(default=DEFAULT_JOB_NAME, description="Pushgateway grouping key")

    @model_validator(mode="after")
    def _pool_bounds(self) -> ScoringConfig:
        if self.num_actors != "auto" and (self.min_actors or 1) > self.num_actors:
            raise ValueError(
                f"min_actors ({self.min_actors}) exceeds num_actors ({self.num_actors})"
            )
        return self

    @field_validator("run_id")
    @classmethod
    def _valid_run_id(cls, value: str | None) -> str | None:
        if value is not None and not RUN_ID_PATTERN.match(value):
            raise ValueError("run_id must be 1-128 of [A-Za-z0-9._-], starting alphanumeric")
        return value

    @field_validator("table")
    @classmethod
    def _valid_table(cls, value: str) -> str:
        try:
            return check_identifier(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("catalog")
    @classmethod
    def _valid_catalog(cls, value: str | None) -> str | None:
        return check_catalog_name(value) if value is not None else None

    @field_validator("extensions")
    @classmethod
    def _some_extensions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("give at least one extension")
        return value

    def resolved_run_date(self) -> date:
        """The partition date: the configured one or today (UTC)."""
        return self.run_date or datetime.now(UTC).date()

    def resolved_run_id(self) -> str:
        """The configured run id, or one derived from what defines the run.

        The derived id is stable for the same night, mode, source and detector,
        so re-running a failed or finished night replaces its results instead of
        adding a second copy.
        """
        if self.run_id:
            return self.run_id
        what = "|".join(
            (self.source, ",".join(self.extensions), self.detector.model_dump_json(), self.mode)
        )
        digest = hashlib.sha256(what.encode()).hexdigest()[:10]
        return f"{self.mode}-{self.resolved_run_date():%Y%m%d}-{digest}"

    def safe_dump(self) -> dict[str, object]:
        """The config as plain data for logs: credentials embedded in URIs are masked."""
        masked: dict[str, object] = {k: _mask(v) for k, v in self.model_dump(mode="json").items()}
        return masked


def _mask(value: object) -> object:
    if isinstance(value, str):
        return redact_userinfo(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value
