"""The commit records of a results table: manifests (committed state) and intents.

A *manifest* (``_manifests/<run_id>.json``) lists exactly the files of a run's
committed partition; it is the source of truth for our readers. An *intent*
(``_commits/<run_id>.json``) exists only while a commit is in progress (or after
one crashed); it lists the files being published and those being replaced so
that recovery can roll the commit back or forward.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from vip2clip.errors import ConfigError
from vip2clip.results.schema import RUN_DATE, RUN_ID, SCHEMA_VERSION

MANIFEST_FORMAT = "vip2clip-results-manifest/1"
INTENT_FORMAT = "vip2clip-results-intent/1"
# Safe in a path segment and a Hive partition value: no '/', '=', '%' or spaces.
RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


@dataclass(frozen=True)
class CommittedFile:
    """One Parquet file of a committed run, relative to the table root."""

    path: str
    rows: int
    bytes: int


@dataclass(frozen=True)
class Manifest:
    """The committed state of one run of a results table."""

    run_id: str
    run_date: str
    commit_id: str
    committed_at: str
    files: tuple[CommittedFile, ...]
    rows: int
    summary: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION
    format: str = MANIFEST_FORMAT

    def to_json(self) -> bytes:
        """Serialise as UTF-8 JSON."""
        data = asdict(self)
        return json.dumps(data, indent=1, sort_keys=True, default=str).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        """Parse a manifest written by :meth:`to_json`."""
        data = json.loads(raw)
        if data.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"not a results manifest (format {data.get('format')!r})")
        data["files"] = tuple(CommittedFile(**f) for f in data["files"])
        return cls(**data)


@dataclass(frozen=True)
class CommitIntent:
    """A commit in progress: files being published and files they replace."""

    run_id: str
    commit_id: str
    publishing: tuple[str, ...]
    replacing: tuple[str, ...]
    staging: str
    format: str = INTENT_FORMAT

    def to_json(self) -> bytes:
        """Serialise as UTF-8 JSON."""
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> CommitIntent:
        """Parse an intent written by :meth:`to_json`."""
        data = json.loads(raw)
        if data.get("format") != INTENT_FORMAT:
            raise ValueError(f"not a commit intent (format {data.get('format')!r})")
        data["publishing"] = tuple(data["publishing"])
        data["replacing"] = tuple(data["replacing"])
        return cls(**data)


def check_run_id(run_id: str) -> str:
    """Return ``run_id`` if it is safe as a path segment and partition value."""
    if not RUN_ID_PATTERN.fullmatch(run_id):
        raise ConfigError(
            f"run id {run_id!r} is invalid: use 1-128 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return run_id


def check_run_date(run_date: str | dt.date) -> str:
    """Return ``run_date`` as ``YYYY-MM-DD`` or raise :class:`ConfigError`."""
    if isinstance(run_date, dt.datetime):
        raise ConfigError(f"run date must be a date, not a datetime: {run_date!r}")
    if isinstance(run_date, dt.date):
        return run_date.isoformat()
    try:
        parsed = dt.date.fromisoformat(run_date)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None or parsed.isoformat() != run_date:
        raise ConfigError(f"run date {run_date!r} is invalid: use YYYY-MM-DD")
    return run_date


def partition_dir(run_date: str, run_id: str) -> str:
    """Relative Hive partition folder of a run."""
    return f"{RUN_DATE}={run_date}/{RUN_ID}={run_id}"
