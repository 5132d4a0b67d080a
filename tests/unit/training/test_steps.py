"""Ray-free training pieces on the tiny random backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vip2clip.model import BackboneSpec, DetectorConfig, ViP2CLIP, VisualFeatures
from vip2clip.training.config import TrainingConfig, load_training_config
from vip2clip.training.feature_cache import FeatureCache
from vip2clip.training.steps import (
    GLOBAL,
    TAPS,
    LearnedHead,
    Row,
    batch_features,
    batch_targets,
    build_model,
    build_optimizer,
    encode_rows,
    row_from_cache,
    sample_key,
    train_step,
)

SIZE = 32  # two 16-px patches per side: tiny and fast


@pytest.fixture(scope="module")
def config() -> TrainingConfig:
    return load_training_config(
        None,
        (
            "dataset.uri=/unused",
            "storage_uri=/unused",
            "detector.backbone.model=vip2clip-tiny",
            "detector.backbone.pretrained=null",
            f"detector.image_size={SIZE}",
            "detector.top_k=2",
        ),
    )


@pytest.fixture()
def model(config: TrainingConfig) -> ViP2CLIP:
    built, _ = build_model(config, config.storage)
    return built.train()


def _rows(n: int, seed: int = 0) -> list[Row]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        mask = np.zeros((SIZE, SIZE), dtype=np.uint8)
        if i % 2:
            mask[4:12, 8:20] = 1
        pixels = rng.standard_normal((3, SIZE, SIZE)).astype(np.float32)
        rows.append(Row(key=f"mem://img{i}.png", label=i % 2, mask=mask, pixels=pixels))
    return rows


def test_metadata_describes_the_learner(config: TrainingConfig) -> None:
    model, metadata = build_model(config, config.storage)
    assert metadata.taps == tuple(model.taps) and metadata.image_size == SIZE
    assert metadata.backbone == model.backbone_identity
    assert metadata.training["optimizer"]["lr_prompt"] == config.optimizer.lr_prompt


def test_optimizer_has_the_recipe_rates_over_exactly_the_learner(
    model: ViP2CLIP, config: TrainingConfig
) -> None:
    optimizer = build_optimizer(model, config.optimizer)
    rates = [group["lr"] for group in optimizer.param_groups]
    assert rates == [config.optimizer.lr_prompt, config.optimizer.lr_fgp]
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimized == {id(p) for p in model.learner.parameters()}


def test_learned_head_exposes_only_the_learner(model: ViP2CLIP) -> None:
    head = LearnedHead(model)
    names = [name for name, _ in head.named_parameters()]
    assert names and all(name.startswith("learner.") for name in names)
    assert len(names) == len(list(model.learner.parameters()))


def test_cached_features_equal_fresh_ones(model: ViP2CLIP) -> None:
    rows = _rows(4)
    cpu = torch.device("cpu")
    fresh = batch_features(model, rows, None, cpu, encode_batch=4)
    cache = FeatureCache(max_bytes=10**8)
    first = batch_features(model, rows[2:], cache, cpu, encode_batch=4)  # fills two entries
    mixed = batch_features(model, rows, cache, cpu, encode_batch=4)  # two encoded, two hits
    assert torch.equal(first.taps, fresh.taps[:, 2:])
    assert torch.equal(mixed.taps, fresh.taps)
    assert torch.equal(mixed.global_feature, fresh.global_feature)
    assert cache.stats.hits == 2 and len(cache) == 4


def test_encoding_runs_fixed_shape_batches_independent_of_companions(
    model: ViP2CLIP, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = _rows(7)
    shapes: list[tuple[int, ...]] = []
    encode = model.encode

    def recording_encode(pixels: torch.Tensor) -> VisualFeatures:
        shapes.append(tuple(pixels.shape))
        return encode(pixels)

    monkeypatch.setattr(model, "encode", recording_encode)
    cpu = torch.device("cpu")
    together = encode_rows(model, rows, cpu, encode_batch=4)
    assert shapes == [(4, 3, SIZE, SIZE), (4, 3, SIZE, SIZE)]  # 7 rows: one padded pass
    reordered = encode_rows(model, rows[::-1], cpu, encode_batch=4)
    for entry, again in zip(together, reordered[::-1], strict=True):
        assert torch.equal(entry[TAPS], again[TAPS])
        assert torch.equal(entry[GLOBAL], again[GLOBAL])
    with pytest.raises(ValueError, match="positive"):
        encode_rows(model, rows, cpu, encode_batch=0)


def test_replayed_rows_need_no_pixels(model: ViP2CLIP) -> None:
    rows = _rows(2)
    cache = FeatureCache(max_bytes=10**8)
    fresh = batch_features(model, rows, cache, torch.device("cpu"))
    replayed = []
    for row in rows:
        entry = cache.get(sample_key(model, row.key))
        assert entry is not None
        replayed.append(row_from_cache(entry, row.key))
    again = batch_features(model, replayed, None, torch.device("cpu"))
    assert torch.equal(again.taps, fresh.taps)
    masks, labels = batch_targets(replayed, torch.device("cpu"))
    assert torch.equal(masks, torch.from_numpy(np.stack([r.mask for r in rows])).float())
    assert labels.tolist() == [0, 1]


def test_missing_pixels_without_cache_entry_is_an_error(model: ViP2CLIP) -> None:
    row = Row(key="mem://lost.png", label=0, mask=np.zeros((SIZE, SIZE), np.uint8), pixels=None)
    with pytest.raises(RuntimeError, match="not cached"):
        batch_features(model, [row], None, torch.device("cpu"))


def test_train_step_moves_the_learner_and_not_the_backbone(
    model: ViP2CLIP, config: TrainingConfig
) -> None:
    rows = _rows(4)
    optimizer = build_optimizer(model, config.optimizer)
    learner_before = [p.detach().clone() for p in model.learner.parameters()]
    backbone_before = [p.detach().clone() for p in model.clip.parameters()]
    features = batch_features(model, rows, None, torch.device("cpu"))
    masks, labels = batch_targets(rows, torch.device("cpu"))
    terms = train_step(LearnedHead(model), optimizer, features, masks, labels)
    assert torch.isfinite(terms.total) and terms.total > 0
    assert any(
        not torch.equal(a, b)
        for a, b in zip(learner_before, model.learner.parameters(), strict=True)
    )
    assert all(
        torch.equal(a, b) for a, b in zip(backbone_before, model.clip.parameters(), strict=True)
    )


def test_untrained_learner_is_seeded(config: TrainingConfig) -> None:
    first, _ = build_model(config, config.storage)
    second, _ = build_model(config, config.storage)
    for a, b in zip(first.learner.parameters(), second.learner.parameters(), strict=True):
        assert torch.equal(a, b)
    other = config.model_copy(
        update={"detector": DetectorConfig(**{**config.detector.model_dump(), "seed": 5})}
    )
    third, _ = build_model(other, other.storage)
    assert any(
        not torch.equal(a, b)
        for a, b in zip(first.learner.parameters(), third.learner.parameters(), strict=True)
    )
    assert BackboneSpec.tiny().model == config.detector.backbone.model
