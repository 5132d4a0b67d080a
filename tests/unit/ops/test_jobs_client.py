"""Addresses normalise to the Jobs API URL; failures map to one-line, token-free errors."""

from __future__ import annotations

import pytest

from vip2clip.errors import ClusterError
from vip2clip.ops.jobs_client import (
    HTTP_FORBIDDEN,
    HTTP_NOT_FOUND,
    HTTP_UNAUTHORIZED,
    _http_status,
    dashboard_url,
    job_message_summary,
)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("10.0.0.5", "http://10.0.0.5:8265"),
        ("10.0.0.5:9000", "http://10.0.0.5:9000"),
        ("http://head:8265/", "http://head:8265"),
        ("https://ray.example.com", "https://ray.example.com"),
    ],
)
def test_dashboard_url(given: str, expected: str) -> None:
    assert dashboard_url(given) == expected


def test_address_comes_from_ray_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "http://from-env:8265")
    assert dashboard_url(None) == "http://from-env:8265"


def test_no_address_and_client_address_are_explained(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(ClusterError, match="RAY_ADDRESS"):
        dashboard_url(None)
    with pytest.raises(ClusterError, match="dashboard URL"):
        dashboard_url("ray://head:10001")


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("Authentication required: Unauthorized: Missing authentication token", HTTP_UNAUTHORIZED),
        ("Token authentication is enabled but the authentication token is invalid", HTTP_FORBIDDEN),
        (
            "Token authentication is enabled but Ray couldn't find an authentication token.",
            HTTP_UNAUTHORIZED,
        ),
        ("Request failed with status code 404: Job x does not exist.", HTTP_NOT_FOUND),
        ("Request failed with status code 500: boom", 500),
        ("something else", None),
    ],
)
def test_http_status_from_ray_messages(text: str, status: int | None) -> None:
    assert _http_status(RuntimeError(text), text) == status


def test_job_message_summary_drops_the_log_tail() -> None:
    message = (
        "Job entrypoint command failed with exit code 3, last available logs "
        "(truncated to 20,000 chars):\nline 1\nline 2"
    )
    assert job_message_summary(message) == "Job entrypoint command failed with exit code 3"
