"""Token lookup follows Ray's precedence, files are private, secrets are redacted."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from vip2clip.errors import ClusterError
from vip2clip.ops.auth import (
    ResolvedToken,
    default_token_path,
    redact,
    resolve_token,
    write_token_file,
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_env_token_wins_over_files(home: Path, tmp_path: Path) -> None:
    write_token_file(default_token_path(), "from-home")
    path_file = write_token_file(tmp_path / "t", "from-path")
    env = {"RAY_AUTH_TOKEN": "from-env", "RAY_AUTH_TOKEN_PATH": str(path_file)}
    resolved = resolve_token(env)
    assert resolved is not None
    assert (resolved.value, resolved.origin) == ("from-env", "$RAY_AUTH_TOKEN")


def test_path_then_home_file(home: Path, tmp_path: Path) -> None:
    write_token_file(default_token_path(), "from-home\n")
    path_file = write_token_file(tmp_path / "t", "from-path\n")
    by_path = resolve_token({"RAY_AUTH_TOKEN_PATH": str(path_file)})
    assert by_path is not None and by_path.value == "from-path"
    by_home = resolve_token({})
    assert by_home is not None and by_home.value == "from-home"


def test_no_token_anywhere_is_none(home: Path) -> None:
    assert resolve_token({}) is None


def test_token_path_to_missing_file_is_an_error(home: Path, tmp_path: Path) -> None:
    with pytest.raises(ClusterError, match="RAY_AUTH_TOKEN_PATH"):
        resolve_token({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "absent")})


def test_token_file_is_owner_only(tmp_path: Path) -> None:
    path = write_token_file(tmp_path / "dir" / "token", "s3cr3t")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "s3cr3t"


def test_token_is_not_in_repr_and_goes_in_bearer_header() -> None:
    token = ResolvedToken("abc123", "$RAY_AUTH_TOKEN")
    assert "abc123" not in repr(token)
    assert token.headers() == {"Authorization": "Bearer abc123"}


def test_redact_replaces_every_secret() -> None:
    assert redact("a=tok b=key tok", ["tok", "key", ""]) == "a=*** b=*** ***"
