"""Job summary contents, grouping, and the push paths that must never fail a job."""

from __future__ import annotations

import base64
import http.server
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.net import free_port
from vip2clip.telemetry import push
from vip2clip.telemetry.push import JobSummary, PushConfig, push_job_summary, summary_registry

DOCS = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"
START = 1_700_000_000.0


def summary(**changes: object) -> JobSummary:
    values: dict[str, object] = {
        "job_kind": "score",
        "job_name": "nightly-archive",
        "run_id": "2026-11-25",
        "model_id": "vip2clip-tiny@abc123",
        "start_time": START,
        "end_time": START + 40.0,
        "objects_ok": 80,
        "objects_error": 3,
        "objects_skipped": 17,
        "exit_status": 0,
    }
    values.update(changes)
    return JobSummary(**values)  # type: ignore[arg-type]


def samples(job: JobSummary) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(summary_registry(job)).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_successful_summary_has_exact_values() -> None:
    assert samples(summary()) == {
        ("vip2clip_job_start_timestamp_seconds", ()): START,
        ("vip2clip_job_end_timestamp_seconds", ()): START + 40.0,
        ("vip2clip_job_duration_seconds", ()): 40.0,
        ("vip2clip_job_images_per_second", ()): 2.0,
        ("vip2clip_job_exit_status", ()): 0.0,
        ("vip2clip_job_objects", (("status", "ok"),)): 80.0,
        ("vip2clip_job_objects", (("status", "error"),)): 3.0,
        ("vip2clip_job_objects", (("status", "skipped"),)): 17.0,
        (
            "vip2clip_job_info",
            (("model_id", "vip2clip-tiny@abc123"), ("run_id", "2026-11-25")),
        ): 1.0,
        ("vip2clip_job_last_success_timestamp_seconds", ()): START + 40.0,
    }


def test_failed_summary_does_not_claim_a_success() -> None:
    found = samples(summary(exit_status=2))
    assert found[("vip2clip_job_exit_status", ())] == 2.0
    assert ("vip2clip_job_last_success_timestamp_seconds", ()) not in found


def test_derived_values_of_a_degenerate_run() -> None:
    instant = summary(end_time=START, objects_ok=5)
    assert instant.duration_s == 0.0
    assert instant.images_per_second == 0.0
    assert summary(end_time=START - 5).duration_s == 0.0
    assert not summary(exit_status=1).succeeded


def test_pushed_series_have_no_per_run_or_per_image_labels() -> None:
    for name, labels in samples(summary()):
        label_keys = {key for key, _ in labels}
        allowed = {"run_id", "model_id"} if name == "vip2clip_job_info" else {"status"}
        assert label_keys <= allowed, name


def test_url_comes_from_config_then_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(push.PUSHGATEWAY_URL_ENV, "http://env:9091")
    assert PushConfig().resolved_url() == "http://env:9091"
    assert PushConfig(url="http://cfg:9091").resolved_url() == "http://cfg:9091"
    monkeypatch.setenv(push.PUSHGATEWAY_URL_ENV, "")
    assert PushConfig().resolved_url() is None


def test_without_a_url_nothing_is_pushed_and_it_is_said_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(push.PUSHGATEWAY_URL_ENV, raising=False)
    monkeypatch.setattr(push, "_warn_no_url", push._WarnOnce())
    with caplog.at_level(logging.WARNING, logger=push.__name__):
        assert push_job_summary(PushConfig(), summary()) is False
        assert push_job_summary(PushConfig(), summary()) is False
    notes = [r.getMessage() for r in caplog.records if "not pushed" in r.getMessage()]
    assert len(notes) == 1
    assert push.PUSHGATEWAY_URL_ENV in notes[0]


def test_unreachable_pushgateway_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    config = PushConfig(url=f"http://127.0.0.1:{free_port()}", timeout_s=2)
    with caplog.at_level(logging.WARNING, logger=push.__name__):
        assert push_job_summary(config, summary()) is False
    assert any("could not push job summary" in r.getMessage() for r in caplog.records)


@dataclass
class Recorded:
    """What a tiny local HTTP server received."""

    status: int
    requests: list[tuple[str, str]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)


@pytest.fixture
def http_server() -> Iterator[tuple[str, Recorded]]:
    recorded = Recorded(status=200)

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            recorded.bodies.append(self.rfile.read(length))
            recorded.requests.append((self.command, self.path))
            recorded.headers.append(dict(self.headers.items()))
            self.send_response(recorded.status)
            self.end_headers()

        do_POST = do_PUT = _answer  # noqa: N815

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", recorded
    finally:
        server.shutdown()
        server.server_close()


def test_push_adds_to_one_group_per_job_name(http_server: tuple[str, Recorded]) -> None:
    url, recorded = http_server
    assert push_job_summary(PushConfig(url=url), summary()) is True
    assert recorded.requests == [
        ("POST", "/metrics/job/vip2clip/job_kind/score/job_name/nightly-archive")
    ]


def test_pushgateway_http_error_is_logged_not_raised(
    http_server: tuple[str, Recorded], caplog: pytest.LogCaptureFixture
) -> None:
    url, recorded = http_server
    recorded.status = 500
    with caplog.at_level(logging.WARNING, logger=push.__name__):
        assert push_job_summary(PushConfig(url=url), summary()) is False
    assert any("could not push job summary" in r.getMessage() for r in caplog.records)


SECRET = "s3cr/et@pw"  # a "/" and an "@": the forms that fool naive URL handling


def test_credentials_in_the_url_go_as_basic_auth_and_never_into_logs(
    http_server: tuple[str, Recorded], caplog: pytest.LogCaptureFixture
) -> None:
    url, recorded = http_server
    with_credentials = url.replace("http://", f"http://pusher:{quote(SECRET, safe='')}@")
    with caplog.at_level(logging.DEBUG):
        assert push_job_summary(PushConfig(url=with_credentials), summary()) is True
    (headers,) = recorded.headers
    expected = base64.b64encode(f"pusher:{SECRET}".encode()).decode()
    assert headers["Authorization"] == f"Basic {expected}"
    assert headers["Host"] == url.removeprefix("http://")  # userinfo never in a host name
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "pushed job summary" in logged and "pusher" not in logged
    assert quote(SECRET, safe="") not in logged and SECRET not in logged
    assert not any(b"pusher" in body or b"s3cr" in body for body in recorded.bodies)


def test_failed_push_with_credentials_logs_none_of_them(caplog: pytest.LogCaptureFixture) -> None:
    url = f"http://pusher:{quote(SECRET, safe='')}@127.0.0.1:{free_port()}"
    unencoded = f"http://pusher:{SECRET}@127.0.0.1:{free_port()}"
    with caplog.at_level(logging.DEBUG):
        assert push_job_summary(PushConfig(url=url, timeout_s=2), summary()) is False
        assert push_job_summary(PushConfig(url=unencoded, timeout_s=2), summary()) is False
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged.count("could not push job summary") == 2
    assert "pusher" not in logged and "s3cr" not in logged


def test_every_pushed_metric_is_documented() -> None:
    text = DOCS.read_text(encoding="utf-8")
    names = {name for name, _ in samples(summary())}
    assert [name for name in sorted(names) if f"`{name}`" not in text] == []
