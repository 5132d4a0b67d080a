"""Writing F1-max thresholds into a learner checkpoint (tiny random backbone)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from vip2clip.errors import ConfigError
from vip2clip.eval.report import Thresholds
from vip2clip.eval.thresholds import write_thresholds
from vip2clip.model import (
    BackboneSpec,
    DetectorConfig,
    LearnerMetadata,
    ViP2CLIP,
    load_backbone,
    load_detector,
    load_learner,
    save_learner,
)

THRESHOLDS = Thresholds(image=0.625, pixel=0.4375, image_f1=0.9, pixel_f1=0.5)


@pytest.fixture(scope="module")
def learner_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DetectorConfig]:
    config = DetectorConfig(backbone=BackboneSpec.tiny(), image_size=112, device="cpu")
    model = ViP2CLIP(load_backbone(config.backbone), config)
    path = tmp_path_factory.mktemp("learner") / "learner.safetensors"
    save_learner(str(path), model.learner, LearnerMetadata(prompts=config.prompts, image_size=112))
    return path, config


def test_thresholds_land_in_metadata_and_detector(
    learner_file: tuple[Path, DetectorConfig],
) -> None:
    path, config = learner_file
    before, _ = load_learner(str(path))
    written = write_thresholds(str(path), THRESHOLDS)
    assert (written.image_threshold, written.pixel_threshold) == (0.625, 0.4375)
    after, metadata = load_learner(str(path))
    assert metadata.image_threshold == 0.625 and metadata.pixel_threshold == 0.4375
    assert metadata.image_size == 112  # the rest of the metadata is kept
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    detector = load_detector(config.model_copy(update={"learner": str(path)}))
    assert detector.image_threshold == 0.625 and detector.pixel_threshold == 0.4375


def test_needs_a_learner_and_defined_thresholds(learner_file: tuple[Path, DetectorConfig]) -> None:
    with pytest.raises(ConfigError, match="needs a learner checkpoint"):
        write_thresholds(None, THRESHOLDS)
    undefined = Thresholds(image=0.5, pixel=math.nan, image_f1=1.0, pixel_f1=math.nan)
    with pytest.raises(ConfigError, match="undefined"):
        write_thresholds(str(learner_file[0]), undefined)


@pytest.mark.parametrize("image", [1.25, -0.5])
def test_thresholds_outside_the_score_range_are_not_written(
    learner_file: tuple[Path, DetectorConfig], image: float
) -> None:
    outside = Thresholds(image=image, pixel=0.5, image_f1=1.0, pixel_f1=1.0)
    with pytest.raises(ConfigError, match=r"outside the \[0, 1\] range"):
        write_thresholds(str(learner_file[0]), outside)
    assert load_learner(str(learner_file[0]))[1].image_threshold in (None, 0.625)
