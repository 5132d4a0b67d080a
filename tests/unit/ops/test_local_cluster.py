"""Node processes get the token by file, never by value; state files hold no secret."""

from __future__ import annotations

import json
from pathlib import Path

from vip2clip.local_cluster import (
    CLUSTER_ID_ENV,
    RAY_LOOPBACK_ENV,
    LocalCluster,
    cluster_id_for,
)


def test_node_env_names_the_token_file_not_the_token(tmp_path: Path) -> None:
    cluster = LocalCluster(token="t0k3n-value", temp_dir=tmp_path)
    env = cluster.node_env()
    assert "t0k3n-value" not in "".join(f"{k}={v}" for k, v in env.items())
    assert env["RAY_AUTH_TOKEN_PATH"] == str(tmp_path / "auth_token")
    assert env["RAY_AUTH_MODE"] == "token"
    assert env[CLUSTER_ID_ENV] == cluster_id_for("t0k3n-value")
    assert env[RAY_LOOPBACK_ENV] == "0"


def test_client_env_carries_the_token_for_drivers(tmp_path: Path) -> None:
    cluster = LocalCluster(token="abc", temp_dir=tmp_path, extra_env={"X": "1"})
    assert cluster.env["RAY_AUTH_TOKEN"] == "abc"
    assert cluster.env["X"] == "1"


def test_cluster_id_is_stable_and_does_not_reveal_the_token() -> None:
    assert cluster_id_for("abc") == cluster_id_for("abc") != cluster_id_for("abd")
    assert "abc" not in cluster_id_for("abc")


def test_state_round_trip_keeps_the_token_out_of_the_state_file(tmp_path: Path) -> None:
    token_file = tmp_path / "auth_token"
    token_file.write_text("secret-token")
    cluster = LocalCluster(
        token="secret-token", temp_dir=tmp_path / "s", token_file=token_file, gcs_port=1234
    )
    state = cluster.save_state(tmp_path / "cluster.json")
    assert "secret-token" not in state.read_text()
    again = LocalCluster.from_state(state)
    assert (again.token, again.gcs_port, again.cluster_id) == (
        "secret-token",
        1234,
        cluster.cluster_id,
    )
    assert json.loads(state.read_text())["token_file"] == str(token_file)


def test_a_non_loopback_host_is_not_loopback_only(tmp_path: Path) -> None:
    cluster = LocalCluster(host="10.1.2.3", temp_dir=tmp_path)
    assert not cluster.loopback
    assert RAY_LOOPBACK_ENV not in cluster.node_env()


def test_state_keeps_the_process_groups_stop_relies_on(tmp_path: Path) -> None:
    cluster = LocalCluster(token="t", temp_dir=tmp_path / "s", token_file=tmp_path / "auth_token")
    cluster.groups = cluster.groups.add(4242).add(4343)
    (tmp_path / "auth_token").write_text("t")
    again = LocalCluster.from_state(cluster.save_state(tmp_path / "cluster.json"))
    assert again.groups == cluster.groups
    assert again.groups.boot_id and again.groups.not_before > 0
