"""A thin, typed client of the Ray Jobs API with one-line errors.

Wraps :class:`ray.job_submission.JobSubmissionClient`: the token (from Ray's
usual sources) goes in an explicit ``Authorization`` header, and every failure
(unreachable address, missing or rejected token, unknown job) becomes a
:class:`~vip2clip.errors.ClusterError` whose message says what to do.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from vip2clip.errors import ClusterError
from vip2clip.ops.auth import TOKEN_SOURCES_HINT, ResolvedToken, redact, resolve_token
from vip2clip.storage import check_uri, hide_userinfo

ADDRESS_ENV = "RAY_ADDRESS"
DEFAULT_DASHBOARD_PORT = 8265  # Ray's default dashboard / Jobs API port
HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
TERMINAL_STATUSES = frozenset({"SUCCEEDED", "FAILED", "STOPPED"})
STATUS_POLL_S = 1.0
METADATA_PREFIX = "vip2clip."
RAY_CLIENT_LOGGERS = (
    "ray",
    "ray.dashboard.modules.dashboard_sdk",
    "ray.dashboard.modules.job.sdk",
    "ray._private.runtime_env.packaging",
)
# The head's job agent registers a little after the dashboard answers (and again
# after an agent restart): Ray then answers "No available agent"; retry that.
AGENT_NOT_READY = "No available agent"
AGENT_WAIT_S = 90.0
AGENT_RETRY_S = 2.0
LOG_TAIL_MARKER = ", last available logs"


@dataclass(frozen=True)
class JobRecord:
    """What the CLI shows about one job."""

    job_id: str
    status: str
    entrypoint: str
    message: str
    start_time_ms: int | None
    end_time_ms: int | None
    metadata: dict[str, str]
    runtime_env: dict[str, Any] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        """True once the job can no longer change state."""
        return self.status in TERMINAL_STATUSES

    @property
    def succeeded(self) -> bool:
        return self.status == "SUCCEEDED"


def dashboard_url(address: str | None) -> str:
    """Normalise ``--address`` / ``$RAY_ADDRESS`` to the Jobs API's HTTP URL.

    ``host`` or ``host:port`` become ``http://host:port`` (default port 8265);
    ``http(s)://...`` is kept. A ``ray://`` or GCS address is refused with a hint, and
    so is one that carries credentials (``http://user:secret@host``).
    """
    raw = (address or os.environ.get(ADDRESS_ENV, "")).strip().rstrip("/")
    if not raw:
        raise ClusterError(
            f"no cluster address: pass --address http://HOST:{DEFAULT_DASHBOARD_PORT} "
            f"or set {ADDRESS_ENV}"
        )
    if raw.startswith(("http://", "https://")):
        return check_uri(raw)
    if "://" in raw:
        raise ClusterError(
            f"address {hide_userinfo(raw)!r} is not the Jobs API: use the dashboard URL "
            f"http://HOST:{DEFAULT_DASHBOARD_PORT}"
        )
    host, sep, port = raw.partition(":")
    # the token comes from Ray's token sources, never from the address (check_uri)
    return check_uri(f"http://{host}:{port if sep else DEFAULT_DASHBOARD_PORT}")


class JobsClient:
    """Submit, list, inspect, follow and stop Ray jobs on one cluster."""

    def __init__(self, address: str | None = None, token: ResolvedToken | None = None) -> None:
        self.url = dashboard_url(address)
        self._token = token if token is not None else resolve_token()
        headers = self._token.headers() if self._token else {}
        self._client = self._call(lambda: self._connect(headers))

    def _connect(self, headers: dict[str, str]) -> Any:
        from ray.job_submission import JobSubmissionClient

        client = JobSubmissionClient(self.url, headers=headers)
        # /api/version is open even with token auth: prove the token on a real call.
        client.list_jobs()
        return client

    def submit(
        self,
        entrypoint: str,
        runtime_env: Mapping[str, Any],
        metadata: Mapping[str, str] | None = None,
        submission_id: str | None = None,
    ) -> str:
        """Submit a job and return its submission id."""
        deadline = time.monotonic() + AGENT_WAIT_S
        while True:
            try:
                return str(
                    self._client.submit_job(
                        entrypoint=entrypoint,
                        runtime_env=dict(runtime_env),
                        metadata=dict(metadata or {}),
                        submission_id=submission_id,
                    )
                )
            except Exception as exc:
                if AGENT_NOT_READY not in str(exc) or time.monotonic() > deadline:
                    raise self._translate(exc, None) from None
            time.sleep(AGENT_RETRY_S)

    def list(self) -> list[JobRecord]:
        """Every job the cluster knows, oldest first."""
        jobs = self._call(self._client.list_jobs)
        records = [_record(job) for job in jobs]
        return sorted(records, key=lambda r: (r.start_time_ms or 0, r.job_id))

    def status(self, job_id: str) -> JobRecord:
        """The job's current record."""
        return _record(self._call(lambda: self._client.get_job_info(job_id), job_id))

    def logs(self, job_id: str) -> str:
        """Everything the job's driver has printed so far."""
        return str(self._call(lambda: self._client.get_job_logs(job_id), job_id))

    def stop(self, job_id: str) -> bool:
        """Ask the cluster to stop the job; False if it had already ended."""
        return bool(self._call(lambda: self._client.stop_job(job_id), job_id))

    def follow(self, job_id: str, sink: Callable[[str], None]) -> JobRecord:
        """Stream the job's logs into ``sink`` until it ends; return its final record."""
        self.status(job_id)  # fail fast on an unknown id
        self._call(lambda: asyncio.run(self._tail(job_id, sink)), job_id)
        return self.wait(job_id)

    def wait(self, job_id: str, timeout_s: float | None = None) -> JobRecord:
        """Poll until the job reaches a terminal status (or ``timeout_s`` passes)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            record = self.status(job_id)
            if record.terminal or (deadline is not None and time.monotonic() > deadline):
                return record
            time.sleep(STATUS_POLL_S)

    async def _tail(self, job_id: str, sink: Callable[[str], None]) -> None:
        async for chunk in self._client.tail_job_logs(job_id):
            sink(chunk)

    def _call(self, fn: Callable[[], Any], job_id: str | None = None) -> Any:
        try:
            return fn()
        except ClusterError:
            raise
        except Exception as exc:
            raise self._translate(exc, job_id) from None

    def _translate(self, exc: Exception, job_id: str | None) -> ClusterError:
        text = redact(str(exc), [self._token.value] if self._token else [])
        status = _http_status(exc, text)
        if status == HTTP_UNAUTHORIZED:
            return ClusterError(
                f"the cluster at {self.url} requires a token and none was found: "
                + TOKEN_SOURCES_HINT
            )
        if status == HTTP_FORBIDDEN:
            origin = self._token.origin if self._token else "?"
            return ClusterError(
                f"the cluster at {self.url} rejected the token from {origin}: "
                "use the token the cluster was started with"
            )
        if status == HTTP_NOT_FOUND and job_id:
            return ClusterError(f"no job {job_id!r} on the cluster at {self.url}")
        if _is_connection_error(exc):
            return ClusterError(
                f"cannot reach the Ray Jobs API at {self.url}: is the cluster up and the "
                f"address right (--address / {ADDRESS_ENV})?"
            )
        first_line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        return ClusterError(f"Ray Jobs API at {self.url} failed: {first_line}")


# Ray's words for "no token": the server's 401, or the client's own check when
# RAY_AUTH_MODE=token is set locally but no token can be found.
MISSING_TOKEN_PHRASES = (
    "Authentication required",
    "Missing authentication token",
    "couldn't find an authentication token",
    "no authentication token was found",
)
_STATUS_IN_TEXT = re.compile(r"status code (\d{3})|\b(\d{3})\b.*(Unauthorized|Forbidden)")


def _http_status(exc: Exception, text: str) -> int | None:
    """The HTTP status behind ``exc``, from its attributes or Ray's message."""
    for attribute in ("status", "status_code", "code"):
        value = getattr(exc, attribute, None)
        if isinstance(value, int) and value >= 100:
            return value
    if any(phrase in text for phrase in MISSING_TOKEN_PHRASES):
        return HTTP_UNAUTHORIZED
    if "token is invalid" in text or "Invalid authentication token" in text:
        return HTTP_FORBIDDEN
    if "does not exist" in text:
        return HTTP_NOT_FOUND
    match = _STATUS_IN_TEXT.search(text)
    if match:
        return int(match.group(1) or match.group(2))
    return None


def _is_connection_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ConnectionError | OSError | TimeoutError):
            return True
        name = type(current).__name__
        if "Connection" in name or "Timeout" in name or "ClientConnector" in name:
            return True
        current = current.__cause__ or current.__context__
    return False


def _record(job: Any) -> JobRecord:
    metadata = {str(k): str(v) for k, v in (getattr(job, "metadata", None) or {}).items()}
    return JobRecord(
        job_id=str(job.submission_id or job.job_id),
        status=str(job.status),
        entrypoint=str(job.entrypoint),
        message=str(job.message or ""),
        start_time_ms=job.start_time,
        end_time_ms=job.end_time,
        metadata=metadata,
        runtime_env=dict(getattr(job, "runtime_env", None) or {}),
    )


def quiet_ray_client_logs() -> None:
    """Silence Ray's client-side INFO logging (package upload, websocket chatter).

    Ray configures its loggers when first imported, so import it before lowering them.
    """
    import logging

    import ray.job_submission  # noqa: F401  (sets up Ray's loggers)

    for name in RAY_CLIENT_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


def job_message_summary(message: str) -> str:
    """The first part of Ray's job message, without the appended log tail."""
    head = message.split(LOG_TAIL_MARKER, 1)[0]
    return " ".join(head.split())
