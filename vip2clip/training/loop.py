"""The per-worker training loop run by Ray Train's ``TorchTrainer``.

Each worker builds the frozen backbone once, wraps the learned head in DDP (the learner is
the only thing synchronised), reads its shard of the training Dataset, and trains. Rank 0
does the side effects: checkpoints every epoch and the final learner file.

Sample order is deterministic given the seed and the worker count: the shard arrives in a
fixed order (``preserve_order``), each worker shuffles it through a seeded window per epoch,
and once every worker holds all its shard's features in the feature cache the epochs replay
the recorded shard order from the cache instead of reading images again.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vip2clip.model import LearnerMetadata, ViP2CLIP, save_learner
from vip2clip.training.checkpoints import (
    TrainProgress,
    epoch_dir_name,
    final_learner_uri,
    read_checkpoint,
    write_checkpoint,
)
from vip2clip.training.config import TrainingConfig
from vip2clip.training.data import ROW_IMAGE_URI, ROW_LABEL, ROW_MASK, ROW_PIXELS
from vip2clip.training.faults import maybe_inject_fault
from vip2clip.training.feature_cache import FeatureCache
from vip2clip.training.order import batched, epoch_seed, shuffled
from vip2clip.training.steps import (
    LearnedHead,
    Row,
    batch_features,
    batch_targets,
    build_model,
    build_optimizer,
    row_from_cache,
    sample_key,
    train_step,
)

log = logging.getLogger(__name__)

CONFIG_KEY = "config"  # key of the serialised TrainingConfig in train_loop_config
FAULT_KEY = "fault"  # key of an optional test-only FaultInjection
DATASET_NAME = "train"


@dataclass
class EpochStats:
    """Sums over one worker's steps in an epoch."""

    steps: int = 0
    samples: int = 0
    pixel_loss: float = 0.0
    image_loss: float = 0.0
    seconds: float = 0.0


@dataclass
class WorkerState:
    """Everything one worker keeps across epochs."""

    config: TrainingConfig
    model: ViP2CLIP
    head: nn.Module  # the learned head, DDP-wrapped when there are several workers
    optimizer: torch.optim.Optimizer
    metadata: LearnerMetadata
    device: torch.device
    rank: int
    world: int
    cache: FeatureCache | None
    shard_order: list[str] | None = None  # image URIs of this shard, in stream order
    global_step: int = 0
    telemetry: Any = None  # vip2clip.telemetry.live.TrainingMetrics on rank 0, when present
    fault: dict[str, Any] | None = None


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """Entry point of every Ray Train worker."""
    import ray.train

    state = _setup(loop_config)
    start_epoch = _restore(state)
    shard = ray.train.get_dataset_shard(DATASET_NAME)
    for epoch in range(start_epoch, state.config.optimizer.epochs):
        if state.telemetry is not None:
            state.telemetry.epoch(epoch)
        stats = _run_epoch(state, shard, epoch)
        _finish_epoch(state, epoch, stats)
    if state.rank == 0:
        uri = final_learner_uri(state.config.storage_uri, state.config.run_name)
        save_learner(uri, state.model.learner, state.metadata, state.config.storage)
        log.info("final learner written to %s", uri)


def _setup(loop_config: dict[str, Any]) -> WorkerState:
    import ray.train
    import ray.train.torch

    config = TrainingConfig.model_validate(loop_config[CONFIG_KEY])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()
    torch.manual_seed(config.optimizer.seed)
    model, metadata = build_model(config, config.storage)
    model.to(device).train()
    head: nn.Module = LearnedHead(model)
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [device.index] if device.type == "cuda" else None
        head = DistributedDataParallel(head, device_ids=device_ids)
    cache = None
    if config.cache.enabled:
        spill = config.cache.spill_dir
        cache = FeatureCache(
            config.cache.max_bytes,
            spill_dir=f"{spill}/rank{rank}" if spill else None,
            spill_max_bytes=config.cache.spill_max_bytes,
        )
    return WorkerState(
        config=config,
        model=model,
        head=head,
        optimizer=build_optimizer(model, config.optimizer),
        metadata=metadata,
        device=device,
        rank=rank,
        world=world,
        cache=cache,
        telemetry=_telemetry(config) if rank == 0 else None,
        fault=loop_config.get(FAULT_KEY),
    )


def _restore(state: WorkerState) -> int:
    """Load the latest checkpoint if the run has one; return the first epoch to train."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        learner_state, optimizer_state, progress = read_checkpoint(Path(folder))
    state.model.learner.load_state_dict(learner_state)
    state.optimizer.load_state_dict(optimizer_state)
    state.global_step = progress.global_step
    if state.rank == 0:
        log.info("resuming after epoch %d (step %d)", progress.epoch + 1, progress.global_step)
    return progress.epoch + 1


def _run_epoch(state: WorkerState, shard: Any, epoch: int) -> EpochStats:
    stats = EpochStats()
    started = time.perf_counter()
    seed = epoch_seed(state.config.optimizer.seed, epoch, state.rank)
    rows = shuffled(_epoch_rows(state, shard), state.config.shuffle_buffer, seed)
    for step_in_epoch, batch in enumerate(batched(rows, state.config.per_worker_batch)):
        maybe_inject_fault(state.fault, state.rank, epoch, step_in_epoch)
        step_started = time.perf_counter()
        features = batch_features(
            state.model, batch, state.cache, state.device, state.config.per_worker_batch
        )
        masks, labels = batch_targets(batch, state.device)
        terms = train_step(state.head, state.optimizer, features, masks, labels)
        state.global_step += 1
        stats.steps += 1
        stats.samples += len(batch)
        pixel_loss, image_loss = terms.pixel.item(), terms.image.item()
        stats.pixel_loss += pixel_loss
        stats.image_loss += image_loss
        if state.telemetry is not None:
            state.telemetry.step(
                time.perf_counter() - step_started,
                pixel_loss,
                image_loss,
                len(batch) * state.world,
            )
    stats.seconds = time.perf_counter() - started
    return stats


def _epoch_rows(state: WorkerState, shard: Any) -> Iterator[Row]:
    """This epoch's rows in shard order: replayed from the cache when every worker can,
    else streamed from the Ray Data shard (recording the order on the first pass)."""
    if _all_workers_cached(state):
        assert state.cache is not None and state.shard_order is not None
        for uri in state.shard_order:
            entry = state.cache.get(sample_key(state.model, uri))
            assert entry is not None
            yield row_from_cache(entry, uri)
        return
    order: list[str] = []
    for item in shard.iter_rows():
        row = Row(
            key=str(item[ROW_IMAGE_URI]),
            label=int(item[ROW_LABEL]),
            mask=np.asarray(item[ROW_MASK], dtype=np.uint8),
            pixels=np.asarray(item[ROW_PIXELS], dtype=np.float32),
        )
        order.append(row.key)
        yield row
    if state.shard_order is None:
        state.shard_order = order


def _all_workers_cached(state: WorkerState) -> bool:
    """Whether every worker holds all its shard's features (decided together: a worker
    that skipped its shard while others read theirs would stall Ray Data's split)."""
    local = (
        state.cache is not None
        and state.shard_order is not None
        and all(sample_key(state.model, uri) in state.cache for uri in state.shard_order)
    )
    if state.world == 1:
        return local
    import torch.distributed as dist

    flag = torch.tensor([1 if local else 0], device=state.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def _finish_epoch(state: WorkerState, epoch: int, stats: EpochStats) -> None:
    import ray.train

    metrics = _global_metrics(state, epoch, stats)
    if state.rank == 0:
        log.info(
            "epoch %d/%d: loss %.4f, image loss %.4f, %.1f samples/s",
            epoch + 1,
            state.config.optimizer.epochs,
            metrics["loss"],
            metrics["image_loss"],
            metrics["samples_per_s"],
        )
        progress = TrainProgress(epoch=epoch, global_step=state.global_step, metrics=metrics)
        with tempfile.TemporaryDirectory(prefix="vip2clip-ckpt-") as folder:
            write_checkpoint(
                Path(folder), state.model.learner, state.metadata, state.optimizer, progress
            )
            ray.train.report(
                metrics,
                checkpoint=ray.train.Checkpoint.from_directory(folder),
                checkpoint_dir_name=epoch_dir_name(epoch),
            )
        if state.telemetry is not None:
            state.telemetry.checkpoint_written()
    else:
        ray.train.report(metrics)


def _global_metrics(state: WorkerState, epoch: int, stats: EpochStats) -> dict[str, float]:
    """Losses averaged over all workers' steps; throughput of all workers together."""
    sums = torch.tensor(
        [stats.steps, stats.samples, stats.pixel_loss, stats.image_loss],
        dtype=torch.float64,
    )
    seconds = torch.tensor([stats.seconds], dtype=torch.float64)
    if state.world > 1:
        import torch.distributed as dist

        sums, seconds = sums.to(state.device), seconds.to(state.device)
        dist.all_reduce(sums)
        dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
        sums, seconds = sums.cpu(), seconds.cpu()
    steps, samples, pixel, image = sums.tolist()
    wall = float(seconds.item())
    cache = state.cache.stats if state.cache is not None else None
    return {
        "epoch": float(epoch),
        "global_step": float(state.global_step),
        "loss": pixel / max(steps, 1),
        "image_loss": image / max(steps, 1),
        "total_loss": (pixel + image) / max(steps, 1),
        "samples": samples,
        "epoch_s": wall,
        "samples_per_s": samples / wall if wall > 0 else 0.0,
        "cache_hits": float(cache.hits if cache else 0),
        "cache_misses": float(cache.misses if cache else 0),
    }


def _telemetry(config: TrainingConfig) -> Any:
    """Live training metrics when the telemetry module is available (optional)."""
    try:
        from vip2clip.telemetry.live import TrainingMetrics
    except ImportError:  # pragma: no cover - telemetry is optional
        return None
    return TrainingMetrics(run_id=config.run_name, model_id=config.detector.backbone.model or "")
