"""Typed configuration of a training run (YAML file + ``key.path=value`` overrides).

Defaults follow the official recipe (``train.py`` / ``train.sh``): Adam, lr 1e-3 for the
image-conditioned prompts (ICA) and 1e-5 for fine-grained perception (FGP), global batch 8,
10 epochs, seed 111, no augmentation.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from vip2clip.config import FrozenConfig, load_config
from vip2clip.data.datasets import DatasetSpec
from vip2clip.model import DetectorConfig
from vip2clip.model.constants import BATCH_SIZE, EPOCHS, LR_FGP, LR_PROMPT_LEARNER, SEED
from vip2clip.storage import StorageConfig

# 1 GiB of frozen features per worker: ~60 ViT-L/518 samples, ~20k tiny-backbone samples.
DEFAULT_CACHE_BYTES = 1024**3
DEFAULT_SHUFFLE_BUFFER = 1024
DEFAULT_MAX_FAILURES = 3
DEFAULT_RUN_NAME = "vip2clip-train"
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class OptimizerConfig(FrozenConfig):
    """Adam with one learning rate per learner part, as the official recipe."""

    lr_prompt: float = Field(default=LR_PROMPT_LEARNER, gt=0, description="lr of the ICA prompts")
    lr_fgp: float = Field(default=LR_FGP, gt=0, description="lr of fine-grained perception")
    batch_size: int = Field(default=BATCH_SIZE, ge=1, description="global batch, all workers")
    epochs: int = Field(default=EPOCHS, ge=1)
    seed: int = Field(default=SEED, description="seed of the per-epoch shuffles")


class CacheConfig(FrozenConfig):
    """Frozen-feature cache: backbone features computed once per sample and worker."""

    enabled: bool = True
    max_bytes: int = Field(default=DEFAULT_CACHE_BYTES, ge=0, description="bound per worker")
    spill_dir: str | None = Field(
        default=None, description="local folder for entries past the memory bound (None: drop)"
    )
    spill_max_bytes: int = Field(default=0, ge=0, description="bound of the spill folder")


class ScalingSettings(FrozenConfig):
    """How many Ray Train workers and what each gets."""

    workers: int = Field(default=1, ge=1)
    use_gpu: bool | Literal["auto"] = Field(
        default="auto", description="auto: GPUs when the cluster has at least `workers` of them"
    )
    cpus_per_worker: float = Field(default=1.0, gt=0)


class TrainingConfig(FrozenConfig):
    """Everything one training run needs. A minimal YAML::

    dataset: {uri: s3://data/mvtec, format: mvtec, split: test}
    storage_uri: s3://models/vip2clip/runs
    run_name: mvtec-2026-11
    scaling: {workers: 4, use_gpu: auto}
    """

    dataset: DatasetSpec
    detector: DetectorConfig = Field(default_factory=DetectorConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    scaling: ScalingSettings = Field(default_factory=ScalingSettings)
    cache: CacheConfig = Field(default_factory=CacheConfig)
    storage_uri: str = Field(description="checkpoint location: local folder or s3://bucket/prefix")
    run_name: str = Field(default=DEFAULT_RUN_NAME, description="reusing a name resumes the run")
    shuffle_buffer: int = Field(
        default=DEFAULT_SHUFFLE_BUFFER, ge=1, description="per-worker seeded shuffle window"
    )
    max_failures: int = Field(default=DEFAULT_MAX_FAILURES, ge=0, description="worker retries")
    storage: StorageConfig = Field(default_factory=StorageConfig)

    @model_validator(mode="after")
    def _check(self) -> TrainingConfig:
        if not _RUN_NAME.match(self.run_name):
            raise ValueError("run_name: letters, digits, '.', '_' and '-' only (max 128)")
        if self.optimizer.batch_size % self.scaling.workers:
            raise ValueError(
                f"optimizer.batch_size {self.optimizer.batch_size} must be a multiple of "
                f"scaling.workers {self.scaling.workers} (the batch is global)"
            )
        if self.detector.learner is not None:
            raise ValueError("detector.learner must be empty: training starts from a new learner")
        return self

    @property
    def per_worker_batch(self) -> int:
        """Samples each worker contributes to one optimiser step."""
        return self.optimizer.batch_size // self.scaling.workers


def load_training_config(
    path: str | Path | None, overrides: tuple[str, ...] = ()
) -> TrainingConfig:
    """Load a :class:`TrainingConfig` from YAML plus ``key.path=value`` overrides."""
    return load_config(TrainingConfig, path, overrides)
