"""Feature cache: exact round trips, byte bounds, spill folder, stable keys."""

from __future__ import annotations

from pathlib import Path

import torch

from vip2clip.training.feature_cache import FeatureCache, cache_key, tensor_bytes


def _entry(value: float, n: int = 16) -> dict[str, torch.Tensor]:
    return {"taps": torch.full((2, n), value), "global_feature": torch.full((n,), value)}


def test_round_trip_is_an_independent_exact_copy() -> None:
    cache = FeatureCache(max_bytes=10_000)
    entry = _entry(1.5)
    assert cache.put("a", entry)
    entry["taps"].add_(1)  # later changes to the source must not reach the cache
    got = cache.get("a")
    assert got is not None
    assert torch.equal(got["taps"], torch.full((2, 16), 1.5))
    assert cache.stats.hits == 1 and cache.get("b") is None and cache.stats.misses == 1


def test_memory_bound_rejects_entries_past_it() -> None:
    size = tensor_bytes(_entry(0.0))
    cache = FeatureCache(max_bytes=2 * size)
    assert cache.put("a", _entry(0.0)) and cache.put("b", _entry(1.0))
    assert not cache.put("c", _entry(2.0))
    assert "c" not in cache and len(cache) == 2
    assert cache.stats.memory_bytes == 2 * size and cache.stats.rejected == 1


def test_spill_folder_takes_the_overflow_up_to_its_bound(tmp_path: Path) -> None:
    size = tensor_bytes(_entry(0.0))
    cache = FeatureCache(max_bytes=size, spill_dir=tmp_path / "spill", spill_max_bytes=size)
    assert cache.put("a", _entry(0.0)) and cache.put("b", _entry(1.0))
    assert not cache.put("c", _entry(2.0))
    assert len(list((tmp_path / "spill").iterdir())) == 1
    got = cache.get("b")
    assert got is not None and torch.equal(got["global_feature"], torch.full((16,), 1.0))
    cache.clear()
    assert len(cache) == 0 and not list((tmp_path / "spill").iterdir())


def test_key_changes_with_everything_that_shapes_features() -> None:
    base = cache_key("s3://b/x.png", "tiny:random:0", 112, (1, 2))
    assert base == cache_key("s3://b/x.png", "tiny:random:0", 112, (1, 2))
    variants = {
        cache_key("s3://b/y.png", "tiny:random:0", 112, (1, 2)),
        cache_key("s3://b/x.png", "tiny:random:1", 112, (1, 2)),
        cache_key("s3://b/x.png", "tiny:random:0", 224, (1, 2)),
        cache_key("s3://b/x.png", "tiny:random:0", 112, (1, 3)),
    }
    assert base not in variants and len(variants) == 4
