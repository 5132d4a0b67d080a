"""Scoring config: validation, run ids, safe logging."""

from __future__ import annotations

from datetime import date

import pytest

from vip2clip.config import load_config
from vip2clip.errors import ConfigError
from vip2clip.model import BackboneSpec, DetectorConfig
from vip2clip.scoring import ScoringConfig


def _config(**changes: object) -> ScoringConfig:
    base: dict[str, object] = {
        "source": "s3://b/in",
        "table": "ns.out",
        "run_date": "2026-11-25",
    }
    return ScoringConfig.model_validate({**base, **changes})


def test_derived_run_id_is_stable_per_night_source_and_model() -> None:
    first = _config().resolved_run_id()
    assert first == _config().resolved_run_id()
    assert first.startswith("incremental-20261125-")
    assert first != _config(run_date="2026-11-26").resolved_run_id()
    assert first != _config(source="s3://b/other").resolved_run_id()
    assert first != _config(mode="full").resolved_run_id()
    tiny = DetectorConfig(backbone=BackboneSpec.tiny(), image_size=112)
    assert first != _config(detector=tiny).resolved_run_id()


def test_explicit_run_id_and_date_win() -> None:
    config = _config(run_id="nightly-7", run_date="2026-01-02")
    assert config.resolved_run_id() == "nightly-7"
    assert config.resolved_run_date() == date(2026, 1, 2)


@pytest.mark.parametrize("bad", ["../x", "", "a/b", "-lead"])
def test_unsafe_run_ids_are_rejected(bad: str) -> None:
    with pytest.raises(ConfigError, match="run_id"):
        load_config(
            ScoringConfig, overrides=[f"run_id={bad!r}"], base={"source": "a", "table": "ns.b"}
        )


def test_unknown_keys_and_bad_values_are_config_errors() -> None:
    base = {"source": "a", "table": "ns.b"}
    with pytest.raises(ConfigError, match="batchsize"):
        load_config(ScoringConfig, overrides=["batchsize=3"], base=base)
    with pytest.raises(ConfigError, match="batch_size"):
        load_config(ScoringConfig, overrides=["batch_size=0"], base=base)
    with pytest.raises(ConfigError, match="extensions"):
        load_config(ScoringConfig, overrides=["extensions=[]"], base=base)


def test_gpus_per_actor_accepts_auto_and_numbers() -> None:
    base = {"source": "a", "table": "ns.b"}
    assert load_config(ScoringConfig, base=base).gpus_per_actor == "auto"
    assert (
        load_config(ScoringConfig, overrides=["gpus_per_actor=0.5"], base=base).gpus_per_actor
        == 0.5
    )


def test_safe_dump_masks_credentials_in_uris() -> None:
    config = _config(push={"url": "http://user:secret@gateway:9091"})
    dumped = str(config.safe_dump())
    assert "secret" not in dumped and "http://***@gateway:9091" in dumped


def test_actor_pool_bounds_are_checked() -> None:
    base = {"source": "a", "table": "ns.b"}
    with pytest.raises(ConfigError, match="min_actors"):
        load_config(ScoringConfig, overrides=["num_actors=2", "min_actors=3"], base=base)
    config = load_config(ScoringConfig, overrides=["num_actors=4", "min_actors=1"], base=base)
    assert (config.min_actors, config.num_actors) == (1, 4)


@pytest.mark.parametrize(
    ("override", "where"),
    [
        ("image_threshold=1.5", "image_threshold"),
        ("pixel_threshold=-0.1", "pixel_threshold"),
        ("image_threshold=.nan", "image_threshold"),
        ("batch_size=1025", "batch_size"),
        ("read_batch_size=100000", "read_batch_size"),
        ("detector.image_size=4096", "detector.image_size"),
    ],
)
def test_thresholds_and_sizes_are_bounded(override: str, where: str) -> None:
    base = {"source": "a", "table": "ns.b"}
    with pytest.raises(ConfigError, match=rf"at {where}: .*(equal to|finite number)"):
        load_config(ScoringConfig, overrides=[override], base=base)
    edges = [
        "image_threshold=0",
        "pixel_threshold=1",
        "batch_size=1024",
        "detector.image_size=1024",
    ]
    config = load_config(ScoringConfig, overrides=edges, base=base)
    assert (config.image_threshold, config.pixel_threshold, config.batch_size) == (0, 1, 1024)
