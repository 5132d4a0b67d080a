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
    ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "RAY_AUTH_TOKEN", "DB_PASSWORD", "hf_token"],
)
def test_secret_names_are_refused(project: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="secret"):
        build_runtime_env(RuntimeEnvSpec(), project, {name: "x"}, environ={})


def test_names_that_merely_contain_a_secret_word_are_allowed(project: Path) -> None:
    env = build_runtime_env(RuntimeEnvSpec(), project, {"TOKENIZERS_PARALLELISM": "false"}, {})
    assert env["env_vars"] == {"TOKENIZERS_PARALLELISM": "false"}


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
