"""The runtime environment every vip2clip Ray job runs in, and the job entrypoints.

A job ships the project itself (the ``vip2clip`` package and ``jobs/``) as its
``working_dir``; Ray puts that directory first on the job's ``PYTHONPATH``, so
the shipped code wins over whatever is installed on the nodes. Dependencies
come from the nodes' image (``deploy/docker/Dockerfile``), never from the job.

The definition lives in ``cluster/runtime_env.yaml``. Secrets never travel in
it: AWS credentials and the Ray token reach workers through the node
environment (instance role, Kubernetes Secret), not through job metadata.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import Field

from vip2clip.config import FrozenConfig, load_config
from vip2clip.errors import ConfigError, CredentialsInUriError
from vip2clip.storage import CREDENTIALS_HINT, has_userinfo

JOB_KINDS = ("train", "score", "evaluate")
JOBS_DIR = "jobs"
RUNTIME_ENV_FILE = Path("cluster") / "runtime_env.yaml"
PROJECT_MARKERS = ("pyproject.toml", "vip2clip", JOBS_DIR)
PYTHON = "python"

# gitignore-style patterns Ray applies on top of the project's .gitignore
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".venv/",
    ".git/",
    "tests/",
    "benchmarks/",
    "docs/",
    "deploy/",
    "**/__pycache__/",
    ".mypy_cache/",
    ".ruff_cache/",
    ".pytest_cache/",
    "*.egg-info/",
    "*.parquet",
    "*.safetensors",
    "*.pt",
    "*.pth",
)

# Names that look like credentials, as underscore-separated words of an env var or of a
# config key (AWS_SESSION_TOKEN, DB_PASSWORD, HF_TOKEN, MY_CREDS, SMTP_PWD, API_KEY,
# storage.secret_key): never shipped in a job's env_vars or arguments.
SECRET_NAME = re.compile(
    r"(^|_)(SECRETS?|TOKENS?|PASSWORDS?|PASSWD|CREDS?|CREDENTIALS?|AUTH|KEYS?|APIKEY|"
    r"ACCESSKEY|SECRETKEY|PRIVATE|SESSION)(_|$)|_PWD(_|$)",
    re.I,
)
# Names the pattern catches that are settings, not secrets.
NOT_SECRET_NAMES = frozenset({"RAY_AUTH_MODE"})
# Values whose presence in a runtime env would leak a secret of this process.
SECRET_ENV_VALUES = (
    "RAY_AUTH_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SESSION_TOKEN",
)
# Shorter values of secret-named variables ("1", "true") would match everywhere.
MIN_SECRET_VALUE_CHARS = 8
# Values that are credentials whatever their name: AWS access key ids, PEM private keys.
SECRET_VALUE = re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b|-----BEGIN [A-Z ]*PRIVATE KEY-----")
SET_OPTION = "--set"
_URI = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")
_SECRET_HINT = (
    "jobs get credentials from the node environment (instance role / Kubernetes Secret) "
    "and the AWS credential chain, never from their arguments or runtime env"
)


class RuntimeEnvSpec(FrozenConfig):
    """What a job ships: a project-relative working dir, excludes and plain env vars."""

    working_dir: str = "."
    excludes: tuple[str, ...] = DEFAULT_EXCLUDES
    env_vars: dict[str, str] = Field(default_factory=dict)


def find_project_root(start: Path | None = None) -> Path:
    """The checkout to ship: ``start`` (or the cwd, then this package's checkout) upwards.

    A project root holds ``pyproject.toml``, the ``vip2clip`` package and ``jobs/``.
    """
    candidates = [start] if start is not None else [Path.cwd(), Path(__file__).resolve().parent]
    for candidate in candidates:
        for directory in (candidate.resolve(), *candidate.resolve().parents):
            if all((directory / marker).exists() for marker in PROJECT_MARKERS):
                return directory
        if start is not None:
            break
    where = start if start is not None else Path.cwd()
    raise ConfigError(
        f"no vip2clip project (pyproject.toml, vip2clip/, jobs/) at or above {where}; "
        "run from the checkout or pass --project-dir"
    )


def load_runtime_env_spec(project_root: Path, overrides: Sequence[str] = ()) -> RuntimeEnvSpec:
    """``cluster/runtime_env.yaml`` of the project (defaults when absent) plus overrides."""
    path = project_root / RUNTIME_ENV_FILE
    return load_config(RuntimeEnvSpec, path if path.is_file() else None, overrides)


def build_runtime_env(
    spec: RuntimeEnvSpec,
    project_root: Path,
    extra_env: Mapping[str, str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The ``runtime_env`` dict for ``JobSubmissionClient.submit_job``.

    Raises :class:`ConfigError` if an env var looks like a secret by name or
    carries the value of one of this process's credentials.
    """
    env_vars = {**spec.env_vars, **(extra_env or {})}
    check_no_secrets(env_vars, os.environ if environ is None else environ)
    working_dir = (project_root / spec.working_dir).resolve()
    if not working_dir.is_dir():
        raise ConfigError(f"runtime env working_dir {working_dir} is not a directory")
    runtime_env: dict[str, Any] = {"working_dir": str(working_dir), "excludes": list(spec.excludes)}
    if env_vars:
        runtime_env["env_vars"] = env_vars
    return runtime_env


def check_no_secrets(env_vars: Mapping[str, str], environ: Mapping[str, str]) -> None:
    """Refuse env vars that are, or contain, credentials (by name or by value)."""
    secrets = secret_values(environ)
    for name, value in env_vars.items():
        if is_secret_name(name):
            raise ConfigError(f"env var {name} looks like a secret; {_SECRET_HINT}")
        if _carries_secret(value, secrets):
            raise ConfigError(f"env var {name} carries a credential; refusing ({_SECRET_HINT})")


def check_job_args(args: Sequence[str], environ: Mapping[str, str]) -> None:
    """Refuse job arguments that carry credentials: they would be stored in the job's
    entrypoint, shown by ``vip2clip jobs list``, the Jobs API and Ray's driver logs.

    Refused: a URI with ``user:secret@``, a ``--set`` key that names a secret, a value that
    is a credential (AWS key id, PEM private key) or the value of one of this shell's
    secret-named variables. Messages name the argument's position, never its value.
    """
    secrets = secret_values(environ)
    for position, arg in enumerate(args, start=1):
        if any(has_userinfo(uri) for uri in _URI.findall(arg)):
            raise CredentialsInUriError(
                f"job argument {position} holds a URI with credentials; {CREDENTIALS_HINT}"
            )
        if _carries_secret(arg, secrets):
            raise ConfigError(f"job argument {position} carries a credential; {_SECRET_HINT}")
        key = _override_key(args, position - 1)
        if key is not None and any(is_secret_name(part) for part in key.split(".")):
            raise ConfigError(f"--set {key} looks like a secret; {_SECRET_HINT}")


def is_secret_name(name: str) -> bool:
    """Whether an env var or config key name looks like it holds a credential."""
    return name.upper() not in NOT_SECRET_NAMES and SECRET_NAME.search(name) is not None


def secret_values(environ: Mapping[str, str]) -> set[str]:
    """This process's credentials: known secret variables and any secret-named one."""
    named = {
        value
        for name, value in environ.items()
        if is_secret_name(name) and len(value) >= MIN_SECRET_VALUE_CHARS
    }
    return named | {environ[name] for name in SECRET_ENV_VALUES if environ.get(name)}


def _carries_secret(value: str, secrets: set[str]) -> bool:
    return SECRET_VALUE.search(value) is not None or any(s in value for s in secrets)


def _override_key(args: Sequence[str], index: int) -> str | None:
    """The key of a ``--set KEY=VALUE`` (or ``--set=KEY=VALUE``) at ``args[index]``."""
    arg = args[index]
    if arg.startswith(SET_OPTION + "="):
        return arg[len(SET_OPTION) + 1 :].partition("=")[0].strip()
    if index > 0 and args[index - 1] == SET_OPTION:
        return arg.partition("=")[0].strip()
    return None


def entrypoint_for(
    kind: str,
    args: Sequence[str],
    project_root: Path,
    environ: Mapping[str, str] | None = None,
) -> str:
    """Shell command that runs job ``kind`` (or a project script ``*.py``) with ``args``.

    Raises :class:`ConfigError` when an argument carries a credential (:func:`check_job_args`).
    """
    check_job_args(args, os.environ if environ is None else environ)
    script = job_script(kind, project_root)
    return shlex.join([PYTHON, script.as_posix(), *args])


def job_script(kind: str, project_root: Path) -> Path:
    """Project-relative path of the script for ``kind``; must exist inside the project."""
    relative = Path(kind) if kind.endswith(".py") else Path(JOBS_DIR) / f"{kind}.py"
    if kind not in JOB_KINDS and not kind.endswith(".py"):
        raise ConfigError(f"unknown job kind {kind!r}: use one of {', '.join(JOB_KINDS)}")
    resolved = (project_root / relative).resolve()
    if not resolved.is_relative_to(project_root.resolve()):
        raise ConfigError(f"job script {kind} is outside the project {project_root}")
    if not resolved.is_file():
        raise ConfigError(f"job script {relative} not found in {project_root}")
    return resolved.relative_to(project_root.resolve())
