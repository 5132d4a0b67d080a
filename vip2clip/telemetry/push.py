"""Per-run job summary pushed to a Prometheus Pushgateway (the batch-job pattern).

Every training or scoring run pushes one summary at its end, failed runs
included. The Pushgateway group is ``{job=<PushConfig.job>, job_name=..., job_kind=...}``
so each job name keeps one set of series and tonight's run overwrites last
night's. Pushes use ``pushadd`` (HTTP POST): only the metrics in this push are
replaced, so a failed run, which does not push
``vip2clip_job_last_success_timestamp_seconds``, leaves the previous success in
place for the "nightly run missing" alert.

A URL with credentials (``https://user:secret@gateway``) is split before use: the
credentials go as HTTP basic auth, never into a host name, and logs show the URL with
them hidden. Give such a URL through the node environment, not job arguments.

Without a Pushgateway URL (config or ``VIP2CLIP_PUSHGATEWAY_URL``) the run still
works; it logs once that metrics are not pushed. Push failures are logged and
reported as ``False``, never raised: a metrics outage must not fail a job.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway
from prometheus_client.exposition import basic_auth_handler, default_handler

from vip2clip.config import FrozenConfig
from vip2clip.storage import has_userinfo, hide_userinfo, redact_userinfo

logger = logging.getLogger(__name__)

PUSHGATEWAY_URL_ENV = "VIP2CLIP_PUSHGATEWAY_URL"
DEFAULT_PUSH_JOB = "vip2clip"
DEFAULT_PUSH_TIMEOUT_S = 10.0
EXIT_SUCCESS = 0

SUMMARY_LABELS = ("job_name", "job_kind")  # the grouping key; every pushed series has them
OBJECT_STATUSES = ("ok", "error", "skipped")


class PushConfig(FrozenConfig):
    """Where job summaries go. ``url=None`` falls back to ``$VIP2CLIP_PUSHGATEWAY_URL``."""

    url: str | None = None
    job: str = DEFAULT_PUSH_JOB
    timeout_s: float = DEFAULT_PUSH_TIMEOUT_S

    def resolved_url(self) -> str | None:
        """The Pushgateway address to use, or ``None`` when none is configured."""
        return self.url or os.environ.get(PUSHGATEWAY_URL_ENV) or None


@dataclass(frozen=True)
class JobSummary:
    """Outcome of one run. Timestamps are Unix seconds; ``exit_status`` 0 means success."""

    job_kind: str
    job_name: str
    run_id: str
    model_id: str
    start_time: float
    end_time: float
    objects_ok: int = 0
    objects_error: int = 0
    objects_skipped: int = 0
    exit_status: int = EXIT_SUCCESS

    @property
    def duration_s(self) -> float:
        """Wall time of the run in seconds (never negative)."""
        return max(0.0, self.end_time - self.start_time)

    @property
    def images_per_second(self) -> float:
        """Images scored successfully per second of run time (0 for an instant run)."""
        return self.objects_ok / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def succeeded(self) -> bool:
        """Whether the run ended with exit status 0."""
        return self.exit_status == EXIT_SUCCESS

    def object_counts(self) -> dict[str, int]:
        """Objects per final status (``ok``, ``error``, ``skipped``)."""
        return {
            "ok": self.objects_ok,
            "error": self.objects_error,
            "skipped": self.objects_skipped,
        }


def summary_registry(summary: JobSummary) -> CollectorRegistry:
    """A fresh registry holding the pushed metrics of ``summary`` (see docs/metrics.md).

    Job name and kind are not labels here: they are the push grouping key, which
    the Pushgateway attaches to every series of the group.
    """
    registry = CollectorRegistry()

    def gauge(name: str, doc: str, value: float) -> None:
        Gauge(name, doc, registry=registry).set(value)

    gauge(
        "vip2clip_job_start_timestamp_seconds",
        "Start of the last run (Unix s).",
        summary.start_time,
    )
    gauge("vip2clip_job_end_timestamp_seconds", "End of the last run (Unix s).", summary.end_time)
    gauge("vip2clip_job_duration_seconds", "Wall time of the last run.", summary.duration_s)
    gauge(
        "vip2clip_job_images_per_second",
        "Images scored ok per second in the last run.",
        summary.images_per_second,
    )
    gauge(
        "vip2clip_job_exit_status",
        "Exit status of the last run (0 = success).",
        summary.exit_status,
    )
    objects = Gauge(
        "vip2clip_job_objects",
        "Objects of the last run by final status.",
        ["status"],
        registry=registry,
    )
    for status, count in summary.object_counts().items():
        objects.labels(status=status).set(count)
    info = Gauge(
        "vip2clip_job_info",
        "Run and model identity of the last run (value 1).",
        ["run_id", "model_id"],
        registry=registry,
    )
    info.labels(run_id=summary.run_id, model_id=summary.model_id).set(1)
    if summary.succeeded:
        gauge(
            "vip2clip_job_last_success_timestamp_seconds",
            "End of the last successful run (Unix s).",
            summary.end_time,
        )
    return registry


class _WarnOnce:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._done = False

    def __call__(self, message: str, *args: object) -> None:
        with self._lock:
            if self._done:
                return
            self._done = True
        logger.warning(message, *args)


_warn_no_url = _WarnOnce()


def push_job_summary(config: PushConfig, summary: JobSummary) -> bool:
    """Push ``summary`` to the Pushgateway; return whether it was pushed.

    Never raises for a missing URL or a network/HTTP failure (both are logged).
    """
    url = config.resolved_url()
    if url is None:
        _warn_no_url(
            "no Pushgateway configured (set %s or the push url); job summary metrics "
            "are not pushed",
            PUSHGATEWAY_URL_ENV,
        )
        return False
    shown = hide_userinfo(url)
    grouping_key = {"job_name": summary.job_name, "job_kind": summary.job_kind}
    try:
        gateway, handler = gateway_and_handler(url)
        pushadd_to_gateway(
            gateway,
            job=config.job,
            registry=summary_registry(summary),
            grouping_key=grouping_key,
            timeout=config.timeout_s,
            handler=handler,
        )
    except Exception as exc:  # a metrics outage must not fail the job
        reason = redact_userinfo(str(exc))
        logger.warning(
            "could not push job summary of %s to %s: %s", summary.job_name, shown, reason
        )
        return False
    logger.info("pushed job summary of %s (run %s) to %s", summary.job_name, summary.run_id, shown)
    return True


Handler = Callable[..., Callable[[], None]]


def gateway_and_handler(url: str) -> tuple[str, Handler]:
    """Split credentials off ``url``: the gateway URL without them, and the HTTP handler
    that sends them as basic auth (prometheus_client's default handler when there are none).

    >>> gateway_and_handler("http://user:pw@gw:9091")[0]
    'http://gw:9091'
    """
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.username is None and parts.password is None:
        if has_userinfo(url):  # e.g. a "/" in the password hides the "@" from urlsplit
            raise ValueError("Pushgateway credentials must be percent-encoded in the URL")
        return url, default_handler
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    gateway = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    username, password = unquote(parts.username or ""), unquote(parts.password or "")

    def handler(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
    ) -> Callable[[], None]:
        return basic_auth_handler(url, method, timeout, headers, data, username, password)

    return gateway, handler
