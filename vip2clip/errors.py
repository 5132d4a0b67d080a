"""Typed exceptions. Each says what was wrong and what to do about it.

Every error a user can cause derives from :class:`Vip2ClipError`; the CLI prints
its message on one line and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations


class Vip2ClipError(Exception):
    """Base class of every error a user can cause or fix."""

    exit_code: int = 1


class ConfigError(Vip2ClipError):
    """A configuration file or override is invalid."""

    exit_code = 2


class StorageError(Vip2ClipError):
    """An object or file could not be listed, read or written."""


class BackboneUnavailableError(Vip2ClipError):
    """CLIP backbone weights could not be found or downloaded."""


class CheckpointError(Vip2ClipError):
    """A learner checkpoint is missing, malformed, unsafe or incompatible."""


class ImageDecodeError(Vip2ClipError):
    """An input image could not be decoded; ``reason`` is a stable short code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class DatasetError(Vip2ClipError):
    """A dataset layout or entry is invalid."""


class ClusterError(Vip2ClipError):
    """A Ray cluster could not be reached, or refused the request."""


class QueryError(Vip2ClipError):
    """A SQL query over results is invalid or failed in the query engine."""


class CredentialsInUriError(ConfigError):
    """A URI carries credentials (``scheme://user:secret@host``); they belong in the
    environment or the AWS credential chain, never in a URI."""
