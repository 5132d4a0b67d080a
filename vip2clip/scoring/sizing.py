"""How many inference actors a run gets (scoring, or evaluation on a cluster), and what
each reserves.

Decided once, when the pipeline is planned, from the cluster's resources at that moment:

* **GPU clusters**: one actor per ``gpus_per_actor`` GPUs (one per GPU by default), so every
  GPU runs a model replica; CPUs are left to the read/decode and postprocess tasks that feed
  them.
* **CPU clusters**: half the CPUs run inference actors of ``cpus_per_actor`` threads each, the
  other half read, decode and postprocess (on CPU both sides cost about the same per image
  for the small backbones; for large ones the actors' share is what matters).

An autoscaling cluster that starts with no GPU node plans CPU inference under ``auto``:
give ``gpus_per_actor`` and ``num_actors`` explicitly there, and the actors wait for the
GPU nodes the autoscaler adds.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

CPU_SHARE_FOR_INFERENCE = 0.5  # of the cluster's CPUs, when inference runs on CPU


@dataclass(frozen=True)
class ActorPlan:
    """The inference pool: ``min_actors`` to ``num_actors`` actors of these resources."""

    num_actors: int
    min_actors: int
    gpus_per_actor: float
    cpus_per_actor: float

    @property
    def on_gpu(self) -> bool:
        """Whether each actor holds (a share of) a GPU."""
        return self.gpus_per_actor > 0


def plan_actors(
    resources: Mapping[str, float],
    *,
    num_actors: int | Literal["auto"],
    gpus_per_actor: float | Literal["auto"],
    cpus_per_actor: float,
    min_actors: int | None = None,
) -> ActorPlan:
    """The actor pool on a cluster with these total ``resources``
    (``ray.cluster_resources()``: ``"CPU"``, ``"GPU"``, ...)."""
    gpus = float(resources.get("GPU", 0.0))
    cpus = float(resources.get("CPU", 0.0))
    gpu_share = _gpus_per_actor(gpus_per_actor, gpus)
    if num_actors != "auto":
        size = num_actors
    elif gpu_share > 0:
        size = max(1, math.floor(gpus / gpu_share + 1e-9))
    else:
        size = max(1, math.floor(cpus * CPU_SHARE_FOR_INFERENCE / cpus_per_actor))
    return ActorPlan(size, min(min_actors or 1, size), gpu_share, cpus_per_actor)


def _gpus_per_actor(requested: float | Literal["auto"], cluster_gpus: float) -> float:
    if requested == "auto":
        return 1.0 if cluster_gpus > 0 else 0.0
    if requested > 0 and cluster_gpus == 0:
        logger.warning(
            "gpus_per_actor=%s but the cluster has no GPU now; actors wait for GPU nodes",
            requested,
        )
    return float(requested)
