"""Per-worker cache of frozen backbone features, bounded in bytes.

The backbone is frozen and the official recipe has no augmentation, so the features of a
sample are the same in every epoch: computing them once is an exact speed-up. Entries are
kept in memory up to ``max_bytes``; past that they go to an optional local spill folder
(safetensors files, up to ``spill_max_bytes``); past both bounds new entries are not kept
(first come, first kept: with a cache smaller than the data set, an LRU policy would evict
every entry before its next use in the following epoch, so it would never hit).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

NamedTensors = Mapping[str, torch.Tensor]


def cache_key(
    sample_uri: str, backbone_identity: str, image_size: int, taps: tuple[int, ...]
) -> str:
    """Stable key of one sample's features: its URI and everything that shapes the features."""
    identity = json.dumps([sample_uri, backbone_identity, image_size, list(taps)])
    return hashlib.sha256(identity.encode()).hexdigest()


def tensor_bytes(tensors: NamedTensors) -> int:
    """Bytes the tensors' elements take."""
    return sum(t.numel() * t.element_size() for t in tensors.values())


@dataclass
class CacheStats:
    """Counters of one cache; ``hits + misses`` is the number of lookups."""

    hits: int = 0
    misses: int = 0
    memory_entries: int = 0
    memory_bytes: int = 0
    spilled_entries: int = 0
    spilled_bytes: int = 0
    rejected: int = 0


class FeatureCache:
    """Bounded map from :func:`cache_key` to named CPU tensors (one sample's features)."""

    def __init__(
        self, max_bytes: int, spill_dir: str | Path | None = None, spill_max_bytes: int = 0
    ) -> None:
        self.max_bytes = max_bytes
        self.spill_dir = Path(spill_dir) if spill_dir is not None else None
        self.spill_max_bytes = spill_max_bytes if spill_dir is not None else 0
        self.stats = CacheStats()
        self._memory: dict[str, dict[str, torch.Tensor]] = {}
        self._spilled: set[str] = set()
        if self.spill_dir is not None:
            self.spill_dir.mkdir(parents=True, exist_ok=True)

    def __contains__(self, key: str) -> bool:
        return key in self._memory or key in self._spilled

    def __len__(self) -> int:
        return len(self._memory) + len(self._spilled)

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        """The stored tensors of ``key``, or None (counted as a miss)."""
        found = self._memory.get(key)
        if found is None and key in self._spilled:
            found = load_file(str(self._spill_path(key)))
        if found is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return found

    def put(self, key: str, tensors: NamedTensors) -> bool:
        """Keep a detached contiguous CPU copy of ``tensors``; False when both bounds are full."""
        if key in self:
            return True
        size = tensor_bytes(tensors)
        copy = {name: t.detach().to("cpu").contiguous().clone() for name, t in tensors.items()}
        if self.stats.memory_bytes + size <= self.max_bytes:
            self._memory[key] = copy
            self.stats.memory_entries += 1
            self.stats.memory_bytes += size
            return True
        if self.spill_dir is not None and self.stats.spilled_bytes + size <= self.spill_max_bytes:
            save_file(copy, str(self._spill_path(key)))
            self._spilled.add(key)
            self.stats.spilled_entries += 1
            self.stats.spilled_bytes += size
            return True
        self.stats.rejected += 1
        return False

    def clear(self) -> None:
        """Drop every entry, spilled files included."""
        for key in self._spilled:
            self._spill_path(key).unlink(missing_ok=True)
        self._memory.clear()
        self._spilled.clear()
        self.stats = CacheStats()

    def _spill_path(self, key: str) -> Path:
        assert self.spill_dir is not None
        return self.spill_dir / f"{key}.safetensors"
