"""Epoch checkpoints: learner, optimiser state and progress round-trip exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from vip2clip.errors import CheckpointError
from vip2clip.model import LearnerMetadata
from vip2clip.training.checkpoints import (
    LEARNER_FILE,
    OPTIMIZER_FILE,
    TrainProgress,
    epoch_dir_name,
    final_learner_uri,
    read_checkpoint,
    write_checkpoint,
)


def _trained() -> tuple[nn.Module, torch.optim.Adam]:
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
    module(torch.randn(5, 4)).sum().backward()
    optimizer.step()
    return module, optimizer


def test_round_trip(tmp_path: Path) -> None:
    module, optimizer = _trained()
    progress = TrainProgress(epoch=3, global_step=40, metrics={"loss": 1.25})
    write_checkpoint(tmp_path, module, LearnerMetadata(image_size=112), optimizer, progress)
    learner_state, optimizer_state, restored = read_checkpoint(tmp_path)
    assert restored == progress
    for name, tensor in module.state_dict().items():
        assert torch.equal(learner_state[name], tensor)
    fresh = torch.optim.Adam(module.parameters(), lr=1e-2)
    fresh.load_state_dict(optimizer_state)
    for a, b in zip(fresh.state.values(), optimizer.state.values(), strict=True):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and a["step"] == b["step"]


def test_incomplete_checkpoint_is_refused(tmp_path: Path) -> None:
    module, optimizer = _trained()
    write_checkpoint(
        tmp_path, module, LearnerMetadata(), optimizer, TrainProgress(epoch=0, global_step=1)
    )
    (tmp_path / OPTIMIZER_FILE).unlink()
    with pytest.raises(CheckpointError, match=OPTIMIZER_FILE):
        read_checkpoint(tmp_path)


def test_names_and_final_uri() -> None:
    assert epoch_dir_name(7) == "epoch-0007"
    assert final_learner_uri("s3://b/runs/", "r1") == f"s3://b/runs/r1/{LEARNER_FILE}"
