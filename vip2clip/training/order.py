"""Deterministic sample order: seeded shuffle windows and fixed-size batches.

The same input order and seed give the same output order, whether the items stream from
Ray Data or are replayed from the feature cache, so training is reproducible given the seed
and the worker count, with or without the cache.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Iterator
from itertools import islice
from typing import TypeVar

T = TypeVar("T")


def epoch_seed(seed: int, epoch: int, rank: int) -> int:
    """Seed of one worker's shuffle in one epoch (independent streams per epoch and rank)."""
    digest = hashlib.sha256(f"{seed}/{epoch}/{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little")


def shuffled(items: Iterable[T], buffer_size: int, seed: int) -> Iterator[T]:
    """Shuffle a stream through a window of ``buffer_size`` items (a full shuffle when the
    window holds the whole stream), seeded, in bounded memory.

    >>> list(shuffled(range(5), buffer_size=1, seed=0))
    [0, 1, 2, 3, 4]
    >>> sorted(shuffled(range(5), buffer_size=3, seed=0))
    [0, 1, 2, 3, 4]
    """
    if buffer_size < 1:
        raise ValueError("buffer_size must be at least 1")
    rng = random.Random(seed)
    window: list[T] = []
    for item in items:
        if len(window) < buffer_size:
            window.append(item)
            continue
        pick = rng.randrange(buffer_size)
        yield window[pick]
        window[pick] = item
    rng.shuffle(window)
    yield from window


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """Consecutive lists of ``size`` items; the last one may be shorter.

    >>> list(batched(range(5), 2))
    [[0, 1], [2, 3], [4]]
    """
    if size < 1:
        raise ValueError("size must be at least 1")
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk
