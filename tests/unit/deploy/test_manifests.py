"""Deployment files parse, carry the required fields, and agree with each other and the docs."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
K8S = REPO / "deploy" / "k8s"
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
DOCS = REPO / "docs" / "deployment.md"
AWS = REPO / "cluster" / "aws-gpu.yaml"
IMAGE_REPO = "ghcr.io/vip2clip/vip2clip"
NAMESPACE = "vip2clip"
GPU = "nvidia.com/gpu"
APP_UID = 1000
RAY_KINDS = {"RayCluster", "RayJob", "RayCronJob"}
REQUIRED_KINDS = {
    "Namespace",
    "Secret",
    "RayCluster",
    "RayJob",
    "RayCronJob",
    "CronJob",
    "PodMonitor",
    "ConfigMap",
}


def version() -> str:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return str(tomllib.load(handle)["project"]["version"])


def image() -> str:
    return f"{IMAGE_REPO}:{version()}"


def documents() -> list[tuple[Path, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path, doc))
    return docs


def embedded_rayjobs() -> list[dict[str, Any]]:
    """RayJob specs embedded in ConfigMaps (the CronJob's template)."""
    found = []
    for _, doc in documents():
        if doc["kind"] == "ConfigMap":
            for text in doc.get("data", {}).values():
                found.append(yaml.safe_load(text))
    return found


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair anywhere in a YAML tree."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def containers(node: Any) -> list[dict[str, Any]]:
    return [c for key, value in walk(node) if key == "containers" for c in value]


def test_every_manifest_parses_with_the_basic_fields() -> None:
    docs = documents()
    assert {doc["kind"] for _, doc in docs} >= REQUIRED_KINDS
    for path, doc in docs:
        assert doc.get("apiVersion"), path
        assert doc.get("kind"), path
        if doc["kind"] == "Kustomization":
            continue
        metadata = doc["metadata"]
        assert metadata.get("name") or metadata.get("generateName"), path
        if doc["kind"] != "Namespace":
            assert metadata["namespace"] == NAMESPACE, path
        assert metadata["labels"]["app.kubernetes.io/name"] == "vip2clip", path


def test_all_vip2clip_images_are_the_versioned_image() -> None:
    trees: list[Any] = [doc for _, doc in documents()] + embedded_rayjobs()
    images = {c["image"] for tree in trees for c in containers(tree)}
    ours = {i for i in images if i.startswith(IMAGE_REPO)}
    assert ours == {image()}
    for other in images - ours:
        assert ":" in other and not other.endswith(":latest"), other
    aws = yaml.safe_load(AWS.read_text())
    assert aws["docker"]["image"] == image()
    assert image() in DOCS.read_text()


def test_dockerfile_is_cuda_based_pinned_and_non_root() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG CUDA_IMAGE=nvidia/cuda:[\d.]+-\S+", text, re.M)
    assert re.search(r"^ARG VIP2CLIP_VERSION=" + re.escape(version()) + "$", text, re.M)
    assert f"-t {image()}" in text
    pins = dict(re.findall(r"^([A-Za-z0-9_.\-\[\]]+)==(\S+)$", read_constraints(), re.M))
    for name in ("torch", "torchvision"):
        assert f"{name}=={pins[name]}" in text
    user_lines = re.findall(r"^USER (\S+)", text, re.M)
    assert user_lines and user_lines[-1] in {"${APP_UID}:${APP_UID}", f"{APP_UID}:{APP_UID}"}
    assert f"ARG APP_UID={APP_UID}" in text
    assert "-c /tmp/constraints.txt" in text


def read_constraints() -> str:
    return (REPO / "deploy" / "docker" / "constraints.txt").read_text()


def test_constraints_agree_with_pyproject_pins() -> None:
    with (REPO / "pyproject.toml").open("rb") as handle:
        deps = tomllib.load(handle)["project"]["dependencies"]
    pins = {
        re.sub(r"\[.*\]", "", name).lower().replace("_", "-"): ver
        for name, ver in re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)$", read_constraints(), re.M)
    }
    for dep in deps:
        name, ver = dep.split("==")
        key = re.sub(r"\[.*\]", "", name).lower().replace("_", "-")
        assert pins.get(key) == ver, dep


def raycluster() -> dict[str, Any]:
    (doc,) = [d for _, d in documents() if d["kind"] == "RayCluster"]
    return doc


def test_raycluster_has_token_auth_autoscaling_and_a_gpu_group() -> None:
    spec = raycluster()["spec"]
    assert spec["authOptions"] == {"mode": "token", "secretName": "vip2clip-ray-token"}
    assert spec["enableInTreeAutoscaling"] is True
    assert spec["rayVersion"] == "2.60.0"
    (group,) = spec["workerGroupSpecs"]
    assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"]
    (worker,) = group["template"]["spec"]["containers"]
    requests, limits = worker["resources"]["requests"], worker["resources"]["limits"]
    assert requests == limits  # Ray wants guaranteed resources
    assert limits[GPU] == group["rayStartParams"]["num-gpus"]
    assert limits["cpu"] == group["rayStartParams"]["num-cpus"]
    store = int(group["rayStartParams"]["object-store-memory"])
    assert store < _bytes(limits["memory"])
    head = spec["headGroupSpec"]
    assert head["rayStartParams"]["num-cpus"] == "0"
    assert head["serviceType"] == "ClusterIP"


def _bytes(quantity: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3, "Ti": 1024**4}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def test_docs_resource_table_matches_the_raycluster() -> None:
    spec = raycluster()["spec"]
    (group,) = spec["workerGroupSpecs"]
    limits = group["template"]["spec"]["containers"][0]["resources"]["limits"]
    row = (
        f"| {group['groupName']} | {group['minReplicas']}..{group['maxReplicas']} (autoscaled) "
        f"| {limits['cpu']} | {limits['memory']} | {limits[GPU]} "
        f"| {group['rayStartParams']['object-store-memory']} bytes"
    )
    assert row in DOCS.read_text()
    head_limits = spec["headGroupSpec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert f"| head | 1 | {head_limits['cpu']} | {head_limits['memory']} | 0 |" in DOCS.read_text()


def all_rayjob_specs() -> list[dict[str, Any]]:
    specs = [d["spec"] for _, d in documents() if d["kind"] == "RayJob"]
    specs += [d["spec"]["jobTemplate"] for _, d in documents() if d["kind"] == "RayCronJob"]
    specs += [d["spec"] for d in embedded_rayjobs()]
    return specs


def test_rayjobs_train_and_score_with_the_token_from_the_secret() -> None:
    specs = all_rayjob_specs()
    entrypoints = [spec["entrypoint"] for spec in specs]
    assert any("jobs/train.py" in e for e in entrypoints)
    assert sum("jobs/score.py" in e for e in entrypoints) >= 3  # one-off, CronJob, RayCronJob
    for spec in specs:
        assert spec["clusterSelector"] == {"ray.io/cluster": raycluster()["metadata"]["name"]}
        assert spec["entrypoint"].split()[1].startswith("/home/ray/app/jobs/")
        (submitter,) = spec["submitterPodTemplate"]["spec"]["containers"]
        env = {e["name"]: e for e in submitter["env"]}
        assert env["RAY_AUTH_MODE"]["value"] == "token"
        ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "vip2clip-ray-token", "key": "auth_token"}
        assert "runtimeEnvYAML" not in spec  # code and deps come from the image


def test_job_scripts_named_by_manifests_are_shipped_in_the_image() -> None:
    text = DOCKERFILE.read_text()
    assert "COPY --chown=ray:ray jobs ./jobs" in text
    assert "WORKDIR /home/ray/app" in text


def test_nightly_schedule_both_ways() -> None:
    docs = {d["kind"]: d for _, d in documents()}
    cron = docs["CronJob"]["spec"]
    raycron = docs["RayCronJob"]["spec"]
    assert cron["schedule"] == raycron["schedule"]
    assert cron["concurrencyPolicy"] == "Forbid"
    pod = cron["jobTemplate"]["spec"]["template"]["spec"]
    volume = pod["volumes"][0]["configMap"]["name"]
    assert volume == docs["ConfigMap"]["metadata"]["name"]
    assert pod["containers"][0]["args"] == ["create", "-f", "/etc/vip2clip/rayjob.yaml"]
    role = docs["Role"]["rules"][0]
    assert role["resources"] == ["rayjobs"] and "create" in role["verbs"]
    assert "feature gate" in (K8S / "nightly-raycronjob.yaml").read_text().lower()


def test_podmonitor_scrapes_the_metrics_port_of_the_cluster() -> None:
    (monitor,) = [d for _, d in documents() if d["kind"] == "PodMonitor"]
    spec = monitor["spec"]
    assert spec["selector"]["matchLabels"] == {"ray.io/cluster": raycluster()["metadata"]["name"]}
    ports = {e["port"] for e in spec["podMetricsEndpoints"]}
    for container in containers(raycluster()):
        assert ports <= {p["name"] for p in container["ports"]}


def test_secrets_are_templates_only() -> None:
    secrets = [d for _, d in documents() if d["kind"] == "Secret"]
    assert {s["metadata"]["name"] for s in secrets} == {
        "vip2clip-s3-credentials",
        "vip2clip-ray-token",
        "vip2clip-iceberg-catalog",
    }
    for secret in secrets:
        assert "data" not in secret
        for key, value in secret["stringData"].items():
            # Catalog settings that are not secret (type, warehouse) may be filled in; every
            # credential is a placeholder, also inside the catalog's connection URI.
            if key.endswith(("__TYPE", "__WAREHOUSE")):
                continue
            assert value == "REPLACE_ME" or ":REPLACE_ME@" in value, key


@pytest.mark.parametrize("tree", ["raycluster", "rayjobs"])
def test_pods_run_as_non_root_without_privilege(tree: str) -> None:
    trees: list[Any] = [raycluster()] if tree == "raycluster" else all_rayjob_specs()
    for node in trees:
        pod_contexts = [v for k, v in walk(node) if k == "securityContext" and "runAsUser" in v]
        assert pod_contexts and all(c["runAsUser"] == APP_UID for c in pod_contexts)
        for container in containers(node):
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["resources"]["limits"]


def test_kustomization_lists_existing_files_without_the_feature_gated_one() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (K8S / resource).is_file()
    assert "nightly-raycronjob.yaml" not in kustomization["resources"]


def test_aws_launcher_config_has_token_auth_and_autoscaling_gpu_workers() -> None:
    config = yaml.safe_load(AWS.read_text())
    head = config["available_node_types"][config["head_node_type"]]
    assert head["resources"]["CPU"] == 0
    gpu = config["available_node_types"]["gpu_worker"]
    assert gpu["resources"]["GPU"] >= 1
    assert gpu["min_workers"] == 0 < gpu["max_workers"] <= config["max_workers"]
    options = " ".join(config["docker"]["run_options"])
    assert "RAY_AUTH_MODE=token" in options and "RAY_AUTH_TOKEN_PATH=" in options
    head_start = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head_start
    assert "AWS_SECRET_ACCESS_KEY" not in AWS.read_text()


def test_shell_wrappers_call_the_cli() -> None:
    for name, command in (("local-up.sh", "cluster up"), ("local-down.sh", "cluster down")):
        path = REPO / "cluster" / name
        assert path.stat().st_mode & 0o111
        assert f'vip2clip.cli.main {command} "$@"' in path.read_text()
