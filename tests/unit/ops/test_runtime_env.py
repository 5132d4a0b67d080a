"""The job runtime env ships the project, excludes the heavy parts, and carries no secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from vip2clip.errors import ConfigError
from vip2clip.ops.runtime_env import (
    DEFAULT_EXCLUDES,
    RuntimeEnvSpec,
    build_runtime_env,
    entrypoint_for,
    find_project_root,
    load_runtime_env_spec,
)

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    for name in ("vip2clip", "jobs"):
        (tmp_path / name).mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname='x'\n")
    (tmp_path / "jobs" / "score.py").write_text("print('hi')\n")
    return tmp_path


def test_project_root_is_found_from_a_subdirectory(project: Path) -> None:
    assert find_project_root(project / "jobs") == project.resolve()


def test_missing_project_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--project-dir"):
        find_project_root(tmp_path)


def test_entrypoint_runs_the_job_script_with_quoted_args(project: Path) -> None:
    command = entrypoint_for("score", ["s3://in/a b", "--set", "x=$(rm -rf /)"], project)
    assert command == "python jobs/score.py 's3://in/a b' --set 'x=$(rm -rf /)'"


@pytest.mark.parametrize("kind", ["deploy", "../outside.py"])
def test_unknown_kind_or_script_outside_the_project_is_refused(project: Path, kind: str) -> None:
    (project.parent / "outside.py").write_text("")
    with pytest.raises(ConfigError):
        entrypoint_for(kind, [], project)


def test_missing_job_script_is_refused(project: Path) -> None:
    with pytest.raises(ConfigError, match=r"jobs/train\.py not found"):
        entrypoint_for("train", [], project)


def test_runtime_env_ships_the_project_without_heavy_or_test_files(project: Path) -> None:
    env = build_runtime_env(RuntimeEnvSpec(), project, {"LOG_LEVEL": "debug"}, environ={})
    assert env["working_dir"] == str(project.resolve())
    assert {".venv/", ".git/", "tests/"} <= set(env["excludes"])
    assert env["env_vars"] == {"LOG_LEVEL": "debug"}


@pytest.mark.parametrize(
    "name",
    [
        "AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "RAY_AUTH_TOKEN", "DB_PASSWORD", "hf_token",
        "MY_CREDS", "GCP_CREDENTIAL", "PROXY_AUTH", "SMTP_PWD", "LDAP_PASSWD", "SSH_KEY",
        "TLS_PRIVATE_KEY", "AWS_SESSION_EXPIRY", "APIKEY", "GH_TOKENS",
    ],
)  # fmt: skip
def test_secret_names_are_refused(project: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="secret"):
        build_runtime_env(RuntimeEnvSpec(), project, {name: "x"}, environ={})


def test_names_that_merely_contain_a_secret_word_are_allowed(project: Path) -> None:
    plain = {"TOKENIZERS_PARALLELISM": "false", "KEYBOARD": "us", "PWD": "/x", "AUTHOR": "me"}
    env = build_runtime_env(RuntimeEnvSpec(), project, {**plain, "RAY_AUTH_MODE": "token"}, {})
    assert env["env_vars"] == {**plain, "RAY_AUTH_MODE": "token"}


def test_secret_values_of_this_shell_are_refused(project: Path) -> None:
    environ = {"AWS_SECRET_ACCESS_KEY": "very-secret-value"}
    with pytest.raises(ConfigError, match="credential"):
        build_runtime_env(RuntimeEnvSpec(), project, {"OPTS": "k=very-secret-value"}, environ)


def test_repo_runtime_env_yaml_loads_and_is_secret_free() -> None:
    spec = load_runtime_env_spec(REPO)
    env = build_runtime_env(spec, REPO, environ={})
    assert set(DEFAULT_EXCLUDES) <= set(spec.excludes)
    assert env["env_vars"] == spec.env_vars
    assert env["env_vars"]["PYTHONUNBUFFERED"] == "1"  # logs stream to `jobs logs --follow`


@pytest.mark.parametrize(
    "args",
    [
        ["s3://AKIA:wJal/rXUtn@bucket/in", "s3://b/out"],
        ["s3://b/in", "--set", 'detector={"learner": "s3://k:pw@b/l.safetensors"}'],
        ["s3://b/in", "--set", "storage.secret_access_key=abc"],
        ["s3://b/in", "--set=push.password=abc"],
        ["s3://b/in", "--set", "push.url=http://user:pw@gateway:9091"],
        ["s3://b/in", "--note", "AKIAIOSFODNN7EXAMPLE"],
        ["s3://b/in", "--note", "-----BEGIN RSA PRIVATE KEY-----"],
        ["s3://b/in", "--note", "x-long-shell-secret-value"],
    ],
)
def test_job_args_with_credentials_are_refused(project: Path, args: list[str]) -> None:
    environ = {"DEPLOY_API_KEY": "long-shell-secret-value"}
    with pytest.raises(ConfigError) as refused:
        entrypoint_for("score", args, project, environ)
    message = str(refused.value)
    assert "wJal" not in message and "pw@" not in message and "abc" not in message
    assert "long-shell-secret" not in message and "EXAMPLE" not in message


def test_ordinary_job_args_pass(project: Path) -> None:
    args = [
        "s3://b/img@2x/in",
        "s3://b/out",
        "--set",
        "detector.top_k=8",
        "--set",
        "push.url=http://gw:9091",
    ]
    command = entrypoint_for("score", args, project, {"DEPLOY_API_KEY": "1"})
    assert command.startswith("python jobs/score.py s3://b/img@2x/in")
