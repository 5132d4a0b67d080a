"""Training checkpoints: one folder per epoch with learner, optimiser state and progress.

Layout of a checkpoint folder (Ray Train uploads it to ``<storage>/<run>/epoch-NNNN``)::

    learner.safetensors   learner weights + LearnerMetadata (vip2clip.model.checkpoint)
    optimizer.pt          optimiser state dict (tensors and numbers only: weights_only load)
    progress.json         TrainProgress: completed epoch, global step, last metrics

The run's final learner is written beside them as ``<storage>/<run>/learner.safetensors``,
where ``vip2clip score`` / ``evaluate`` load it directly (``detector.learner=<uri>``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from vip2clip.config import FrozenConfig
from vip2clip.errors import CheckpointError
from vip2clip.model import LearnerMetadata, load_learner, save_learner
from vip2clip.storage import join

LEARNER_FILE = "learner.safetensors"
OPTIMIZER_FILE = "optimizer.pt"
PROGRESS_FILE = "progress.json"
EPOCH_DIR_FORMAT = "epoch-{epoch:04d}"


class TrainProgress(FrozenConfig):
    """Where a run stands after a checkpoint: ``epoch`` is the last completed one (0-based)."""

    epoch: int = Field(ge=0)
    global_step: int = Field(ge=0)
    metrics: dict[str, float] = Field(default_factory=dict)


def epoch_dir_name(epoch: int) -> str:
    """Name of the checkpoint folder of a completed (0-based) epoch."""
    return EPOCH_DIR_FORMAT.format(epoch=epoch)


def final_learner_uri(storage_uri: str, run_name: str) -> str:
    """Where the finished run's learner lives: ``<storage>/<run>/learner.safetensors``."""
    return join(storage_uri, run_name, LEARNER_FILE)


def write_checkpoint(
    folder: Path,
    learner: torch.nn.Module,
    metadata: LearnerMetadata,
    optimizer: torch.optim.Optimizer,
    progress: TrainProgress,
) -> None:
    """Write one epoch's checkpoint files into a local ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    save_learner(str(folder / LEARNER_FILE), learner, metadata)
    torch.save(optimizer.state_dict(), folder / OPTIMIZER_FILE)
    (folder / PROGRESS_FILE).write_text(progress.model_dump_json(indent=2), encoding="utf-8")


def read_checkpoint(
    folder: Path,
) -> tuple[dict[str, torch.Tensor], dict[str, Any], TrainProgress]:
    """Learner state, optimiser state and progress from a local checkpoint ``folder``."""
    missing = [
        f for f in (LEARNER_FILE, OPTIMIZER_FILE, PROGRESS_FILE) if not (folder / f).is_file()
    ]
    if missing:
        raise CheckpointError(f"training checkpoint {folder} lacks {', '.join(missing)}")
    learner_state, _ = load_learner(str(folder / LEARNER_FILE))
    try:
        optimizer_state = torch.load(folder / OPTIMIZER_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{folder / OPTIMIZER_FILE} is unreadable: {exc}") from None
    progress = TrainProgress.model_validate_json((folder / PROGRESS_FILE).read_text("utf-8"))
    return learner_state, optimizer_state, progress
