"""Training config: recipe defaults, validation, YAML + overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from vip2clip.errors import ConfigError
from vip2clip.model.constants import BATCH_SIZE, EPOCHS, LR_FGP, LR_PROMPT_LEARNER, SEED
from vip2clip.training.config import TrainingConfig, load_training_config

REQUIRED = ("dataset.uri=/data/mvtec", "storage_uri=/tmp/runs")


def test_defaults_are_the_official_recipe() -> None:
    config = load_training_config(None, REQUIRED)
    opt = config.optimizer
    assert (opt.lr_prompt, opt.lr_fgp, opt.batch_size, opt.epochs, opt.seed) == (
        LR_PROMPT_LEARNER,
        LR_FGP,
        BATCH_SIZE,
        EPOCHS,
        SEED,
    )
    assert config.detector.image_size == 518 and config.cache.enabled
    assert config.per_worker_batch == BATCH_SIZE


def test_yaml_then_overrides(tmp_path: Path) -> None:
    path = tmp_path / "train.yaml"
    path.write_text(
        "dataset: {uri: s3://b/visa, format: visa}\nstorage_uri: s3://b/runs\n"
        "scaling: {workers: 2}\noptimizer: {epochs: 3}\n"
    )
    config = load_training_config(path, ("optimizer.epochs=5", "cache.enabled=false"))
    assert config.dataset.format == "visa" and config.optimizer.epochs == 5
    assert not config.cache.enabled and config.per_worker_batch == 4


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("scaling.workers=3", "multiple of"),
        ("run_name=bad/name", "run_name"),
        ("detector.learner=/x.safetensors", "learner"),
        ("optimizer.lr_prompt=0", "lr_prompt"),
        ("optimiser.epochs=2", "optimiser"),
    ],
)
def test_invalid_settings_are_config_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_training_config(None, (*REQUIRED, override))


def test_storage_uri_is_required() -> None:
    with pytest.raises(ConfigError, match="storage_uri"):
        load_training_config(None, ("dataset.uri=/data",))
    assert "storage_uri" in TrainingConfig.model_fields
