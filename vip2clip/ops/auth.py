"""Ray token authentication for clients of the cluster: find the token, never show it.

The token is looked up where Ray itself looks, in Ray's order of precedence:
``RAY_AUTH_TOKEN``, then the file named by ``RAY_AUTH_TOKEN_PATH``, then
``~/.ray/auth_token``. It is sent as an ``Authorization: Bearer`` header and
kept out of every message, log line and job record.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vip2clip.errors import ClusterError

TOKEN_ENV = "RAY_AUTH_TOKEN"
TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
AUTH_MODE_ENV = "RAY_AUTH_MODE"
AUTH_MODE_TOKEN = "token"
BEARER_PREFIX = "Bearer "  # RFC 6750, what Ray's dashboard expects
TOKEN_FILE_MODE = 0o600
TOKEN_DIR_MODE = 0o700
REDACTED = "***"
TOKEN_SOURCES_HINT = (
    f"set {TOKEN_ENV}, point {TOKEN_PATH_ENV} to a file holding it, "
    "or write it to ~/.ray/auth_token"
)


def default_token_path() -> Path:
    """Ray's default token file, ``~/.ray/auth_token``."""
    return Path.home() / ".ray" / "auth_token"


@dataclass(frozen=True)
class ResolvedToken:
    """A token and where it came from (the token itself never appears in ``repr``)."""

    value: str = field(repr=False)
    origin: str

    def headers(self) -> dict[str, str]:
        """HTTP headers that authenticate a request to the dashboard / Jobs API."""
        return {"Authorization": BEARER_PREFIX + self.value}


def resolve_token(environ: Mapping[str, str] | None = None) -> ResolvedToken | None:
    """Find the cluster token in Ray's sources, or ``None`` when there is none.

    Raises :class:`ClusterError` when ``RAY_AUTH_TOKEN_PATH`` names a file that
    cannot be read or is empty (a configuration mistake worth saying out loud).
    """
    env = os.environ if environ is None else environ
    direct = env.get(TOKEN_ENV, "").strip()
    if direct:
        return ResolvedToken(direct, f"${TOKEN_ENV}")
    path_setting = env.get(TOKEN_PATH_ENV, "").strip()
    if path_setting:
        token = _read_token_file(Path(path_setting).expanduser())
        if token is None:
            raise ClusterError(f"{TOKEN_PATH_ENV}={path_setting} is missing, unreadable or empty")
        return ResolvedToken(token, f"${TOKEN_PATH_ENV}")
    token = _read_token_file(default_token_path())
    return None if token is None else ResolvedToken(token, "~/.ray/auth_token")


def _read_token_file(path: Path) -> str | None:
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return token or None


def write_token_file(path: Path, token: str) -> Path:
    """Write ``token`` to ``path`` readable by the owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=TOKEN_DIR_MODE)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=".token-")
    try:
        os.fchmod(fd, TOKEN_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token)
        Path(tmp_name).replace(path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every non-empty secret replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text
