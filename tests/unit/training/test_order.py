"""Seeded shuffle windows and batching: deterministic, complete, seed-dependent."""

from __future__ import annotations

import pytest

from vip2clip.training.order import batched, epoch_seed, shuffled


def test_shuffle_is_a_deterministic_permutation() -> None:
    first = list(shuffled(range(50), buffer_size=16, seed=7))
    assert first == list(shuffled(range(50), buffer_size=16, seed=7))
    assert sorted(first) == list(range(50))
    assert first != list(range(50))


def test_shuffle_depends_on_seed_and_window_one_keeps_order() -> None:
    assert list(shuffled(range(50), 64, seed=1)) != list(shuffled(range(50), 64, seed=2))
    assert list(shuffled(range(10), 1, seed=3)) == list(range(10))


def test_shuffle_rejects_empty_window() -> None:
    with pytest.raises(ValueError, match="buffer_size"):
        list(shuffled(range(3), 0, seed=0))


def test_epoch_seeds_differ_per_epoch_and_rank() -> None:
    seeds = {epoch_seed(111, epoch, rank) for epoch in range(3) for rank in range(2)}
    assert len(seeds) == 6
    assert epoch_seed(111, 1, 0) == epoch_seed(111, 1, 0)


def test_batched_keeps_a_short_last_batch() -> None:
    assert list(batched(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(batched([], 3)) == []
    with pytest.raises(ValueError):
        list(batched(range(3), 0))
