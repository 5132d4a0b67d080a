"""Ray Train wiring: a ``TorchTrainer`` over the per-worker loop, storage and retries.

``run_training(config)`` lists the samples, builds the Ray Dataset, starts N workers
(GPU + NCCL when the cluster has the GPUs, CPU + gloo otherwise), checkpoints every epoch
to ``<storage_uri>/<run_name>/epoch-NNNN`` and returns where the final learner is. Reusing
a run name resumes that run from its latest checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from vip2clip.errors import Vip2ClipError
from vip2clip.storage import is_remote, pyarrow_filesystem
from vip2clip.training.checkpoints import final_learner_uri
from vip2clip.training.config import TrainingConfig
from vip2clip.training.data import list_samples, training_dataset
from vip2clip.training.faults import FaultInjection
from vip2clip.training.loop import CONFIG_KEY, DATASET_NAME, FAULT_KEY, train_loop_per_worker

if TYPE_CHECKING:
    import ray.train
    from ray.train.torch import TorchTrainer


class TrainingFailedError(Vip2ClipError):
    """A training run failed after its retries; the message names the cause."""


@dataclass(frozen=True)
class TrainingResult:
    """What a finished run produced."""

    learner_uri: str
    run_path: str
    metrics: dict[str, Any]


def resolve_use_gpu(config: TrainingConfig) -> bool:
    """``scaling.use_gpu``, with ``auto`` = the connected cluster has a GPU per worker."""
    if config.scaling.use_gpu != "auto":
        return bool(config.scaling.use_gpu)
    import ray

    return float(ray.cluster_resources().get("GPU", 0)) >= config.scaling.workers


def run_config(config: TrainingConfig) -> ray.train.RunConfig:
    """Storage (local folder or S3 through a pyarrow filesystem), retries, kept checkpoints."""
    import ray.train

    failure = ray.train.FailureConfig(max_failures=config.max_failures)
    if is_remote(config.storage_uri):
        filesystem, path = pyarrow_filesystem(config.storage_uri, config.storage)
        return ray.train.RunConfig(
            name=config.run_name,
            storage_path=path,  # no scheme: the filesystem says where it lives
            storage_filesystem=filesystem,
            failure_config=failure,
        )
    from vip2clip.storage import filesystem as local_filesystem

    _, path = local_filesystem(config.storage_uri, config.storage)
    return ray.train.RunConfig(name=config.run_name, storage_path=path, failure_config=failure)


def build_trainer(config: TrainingConfig, fault: FaultInjection | None = None) -> TorchTrainer:
    """The ``TorchTrainer`` of ``config`` (needs a connected Ray cluster)."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    use_gpu = resolve_use_gpu(config)
    resources = {"CPU": config.scaling.cpus_per_worker, **({"GPU": 1} if use_gpu else {})}
    rows = list_samples(config.dataset, config.storage)
    dataset = training_dataset(
        rows, config.detector.image_size, config.storage, config.dataset.on_bad_entry
    )
    ingest = ray.train.DataConfig.default_ingest_options()
    ingest.preserve_order = True  # fixed shard contents and order: reproducible runs
    loop_config = {
        CONFIG_KEY: config.model_dump(mode="json"),
        FAULT_KEY: fault.model_dump(mode="json") if fault is not None else None,
    }
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config=loop_config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=config.scaling.workers, use_gpu=use_gpu, resources_per_worker=resources
        ),
        run_config=run_config(config),
        datasets={DATASET_NAME: dataset},
        dataset_config=ray.train.DataConfig(execution_options=ingest, enable_shard_locality=False),
    )


def run_training(config: TrainingConfig, fault: FaultInjection | None = None) -> TrainingResult:
    """Train to the end (resuming a run of the same name) and return the final learner."""
    import ray.train

    trainer = build_trainer(config, fault)
    try:
        result = trainer.fit()
    except ray.train.TrainingFailedError as exc:
        raise TrainingFailedError(
            f"training run {config.run_name} failed after {config.max_failures} retries: "
            f"{_first_line(exc)}"
        ) from exc
    return TrainingResult(
        learner_uri=final_learner_uri(config.storage_uri, config.run_name),
        run_path=result.path,
        metrics=dict(result.metrics or {}),
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
