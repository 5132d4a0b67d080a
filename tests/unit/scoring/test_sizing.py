"""Inference pool sizing from the cluster's resources."""

from __future__ import annotations

from typing import Any

import pytest

from vip2clip.config import load_config
from vip2clip.errors import ConfigError
from vip2clip.scoring.config import ScoringConfig
from vip2clip.scoring.sizing import ActorPlan, plan_actors


def _config(*overrides: str) -> ScoringConfig:
    return load_config(
        ScoringConfig, overrides=list(overrides), base={"source": "a", "table": "ns.b"}
    )


def _plan(config: ScoringConfig, resources: dict[str, Any]) -> ActorPlan:
    return plan_actors(
        resources,
        num_actors=config.num_actors,
        gpus_per_actor=config.gpus_per_actor,
        cpus_per_actor=config.cpus_per_actor,
        min_actors=config.min_actors,
    )


@pytest.mark.parametrize(
    ("overrides", "resources", "expected"),
    [
        # auto on GPU clusters: one replica per GPU, or per GPU share
        ((), {"CPU": 64, "GPU": 8}, ActorPlan(8, 1, 1.0, 1.0)),
        (("gpus_per_actor=0.5",), {"CPU": 64, "GPU": 2}, ActorPlan(4, 1, 0.5, 1.0)),
        # auto on CPU clusters: half the CPUs run inference
        ((), {"CPU": 2}, ActorPlan(1, 1, 0.0, 1.0)),
        ((), {"CPU": 16}, ActorPlan(8, 1, 0.0, 1.0)),
        (("cpus_per_actor=4",), {"CPU": 16}, ActorPlan(2, 1, 0.0, 4.0)),
        (("cpus_per_actor=4",), {"CPU": 2}, ActorPlan(1, 1, 0.0, 4.0)),
        # explicit sizes win; the pool minimum never exceeds the maximum
        (("num_actors=3",), {"CPU": 64, "GPU": 8}, ActorPlan(3, 1, 1.0, 1.0)),
        (("num_actors=3", "min_actors=3"), {"CPU": 2}, ActorPlan(3, 3, 0.0, 1.0)),
        (("min_actors=4",), {"CPU": 4}, ActorPlan(2, 2, 0.0, 1.0)),
        # explicit GPUs on a cluster with none yet (autoscaling): actors wait for GPU nodes
        (("gpus_per_actor=1", "num_actors=2"), {"CPU": 8}, ActorPlan(2, 1, 1.0, 1.0)),
    ],
)
def test_plan(overrides: tuple[str, ...], resources: dict[str, Any], expected: ActorPlan) -> None:
    assert _plan(_config(*overrides), resources) == expected


def test_explicit_gpus_without_gpu_nodes_warn(caplog: pytest.LogCaptureFixture) -> None:
    plan = _plan(_config("gpus_per_actor=1", "num_actors=1"), {"CPU": 8})
    assert plan.on_gpu
    assert "no GPU now" in caplog.text


def test_num_actors_is_positive_or_auto() -> None:
    assert _config().num_actors == "auto"
    with pytest.raises(ConfigError, match="num_actors"):
        _config("num_actors=0")
    with pytest.raises(ConfigError, match="num_actors"):
        _config("num_actors=many")
