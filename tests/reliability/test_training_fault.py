"""Training fault: a Ray Train worker process dies mid-epoch.

Two runs of the same config (2 workers, same seed): one uninterrupted, one whose
rank-1 worker exits abruptly (``os._exit``, via the test-only fault hook) before
step 1 of epoch 1, i.e. after the epoch-0 checkpoint and mid-way through epoch 1.
Ray Train restarts the worker group, which resumes from the epoch-0 checkpoint;
the final learner must equal the uninterrupted run's within float tolerance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from tests.reliability.helpers import DETECTOR
from vip2clip.data.datasets import DatasetSpec
from vip2clip.model.checkpoint import load_learner
from vip2clip.storage import exists, join
from vip2clip.training.checkpoints import LEARNER_FILE, epoch_dir_name
from vip2clip.training.config import TrainingConfig
from vip2clip.training.faults import FaultInjection
from vip2clip.training.trainer import run_training

pytestmark = pytest.mark.integration

WORKERS = 2
EPOCHS = 2
CLASSES = ("wood", "fabric")  # 20 test images with masks: 3 steps of 8 per epoch
ATOL = 1e-6  # same arithmetic, same order: only reduction-order noise is allowed


def _config(dataset: Path, storage: str, run_name: str) -> TrainingConfig:
    return TrainingConfig.model_validate(
        {
            "dataset": DatasetSpec(uri=str(dataset), split="test", classes=CLASSES),
            "detector": DETECTOR,
            "optimizer": {"batch_size": 8, "epochs": EPOCHS},
            # 2 x 0.5 CPU leaves the session cluster's second CPU for the data pipeline
            "scaling": {"workers": WORKERS, "use_gpu": False, "cpus_per_worker": 0.5},
            "storage_uri": storage,
            "run_name": run_name,
            "max_failures": 2,
        }
    )


def test_worker_killed_mid_epoch_resumes_to_the_same_learner(
    ray_cluster: Any, s3_server: Any, synthetic_dataset: Path, tmp_path: Path
) -> None:
    storage = f"s3://{s3_server.new_bucket('runs')}/training"  # checkpoints on object storage
    clean = run_training(_config(synthetic_dataset, storage, "clean"))
    marker = tmp_path / "fault-fired"
    fault = FaultInjection(marker=str(marker), epoch=1, step=1, rank=1)
    faulted = run_training(_config(synthetic_dataset, storage, "faulted"), fault)

    assert marker.exists(), "the worker was never killed"
    faulted_run = join(storage, "faulted")
    assert exists(join(faulted_run, epoch_dir_name(0), LEARNER_FILE))  # what it resumed from
    assert exists(join(faulted_run, epoch_dir_name(EPOCHS - 1), LEARNER_FILE))
    assert faulted.learner_uri == join(faulted_run, LEARNER_FILE)
    expected, _ = load_learner(clean.learner_uri)
    actual, _ = load_learner(faulted.learner_uri)
    assert expected.keys() == actual.keys()
    after_epoch_0, _ = load_learner(join(storage, "clean", epoch_dir_name(0), LEARNER_FILE))
    for name, tensor in expected.items():
        torch.testing.assert_close(actual[name], tensor, atol=ATOL, rtol=0, msg=name)
    # Epoch 1 (the interrupted one) moved the weights: the equality above is not trivial.
    assert any(not torch.equal(after_epoch_0[n], expected[n]) for n in expected)
