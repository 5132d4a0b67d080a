"""Credentials written into URIs never leave the process.

Every CLI entry is given ``s3://KEY:SECRET@bucket/...`` (or an ``http://user:SECRET@host``
endpoint) in each place that takes a URI: source, output/results table, weights, learner,
dataset, checkpoint storage, S3 endpoint, Jobs API address, and job arguments of
``vip2clip submit``. Each must be refused in one line that says to use the credential
chain, before anything is written or started; the secret must appear in no output, no
log record and no file under the test's folder. The secret has a ``/`` in it, as AWS
secret keys do (which hides the ``@`` from a naive URL parser).

``vip2clip submit`` against a real cluster (its Jobs API must hold no trace of a refused
job) is in tests/integration/test_submit.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from vip2clip.cli.main import main
from vip2clip.errors import CredentialsInUriError
from vip2clip.storage import (
    filesystem,
    has_userinfo,
    hide_userinfo,
    local_copy,
    read_bytes,
    redact_userinfo,
    write_bytes,
)

REPO = Path(__file__).resolve().parents[2]
KEY_ID = "AKIAIOSFODNN7EXAMPLE"  # AWS's documentation example key pair
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SECRETS = (KEY_ID, SECRET)
S3_URI = f"s3://{KEY_ID}:{SECRET}@bucket/prefix"
HTTP_URI = f"http://{KEY_ID}:{SECRET}@127.0.0.1:9"


def _uri_forms() -> dict[str, str]:
    return {
        "s3 key:secret": S3_URI,
        "s3 key only": f"s3://{KEY_ID}@bucket/prefix",
        "s3a": f"s3a://{KEY_ID}:{SECRET}@bucket/weights.pt",
        "http endpoint": HTTP_URI,
        "percent-encoded": "s3://AKIA:wJal%2FrXUtn@bucket/x",
    }


@pytest.mark.parametrize("uri", sorted(_uri_forms().values()))
def test_userinfo_is_found_and_hidden(uri: str) -> None:
    assert has_userinfo(uri)
    hidden = hide_userinfo(uri)
    assert KEY_ID not in hidden and "AKIA" not in hidden and "EXAMPLEKEY" not in hidden
    assert "wJal" not in redact_userinfo(f"reading {uri} failed")


@pytest.mark.parametrize(
    "uri",
    ["s3://bucket/img@2x.png", "/data/user@host/x.png", "http://127.0.0.1:9091/x", "s3://b/a:b"],
)
def test_ordinary_uris_with_at_or_colon_are_kept(uri: str) -> None:
    assert not has_userinfo(uri) and hide_userinfo(uri) == uri and redact_userinfo(uri) == uri


@pytest.mark.parametrize(
    "door",
    [
        lambda: filesystem(S3_URI),
        lambda: read_bytes(S3_URI),
        lambda: write_bytes(S3_URI, b"x"),
        lambda: local_copy(S3_URI),
    ],
)
def test_every_storage_door_refuses_credentials(door: Callable[[], object]) -> None:
    with pytest.raises(CredentialsInUriError) as refused:
        door()
    _assert_no_secret(str(refused.value))
    assert "credential chain" in str(refused.value)


def test_an_endpoint_with_credentials_in_the_environment_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", HTTP_URI)
    with pytest.raises(CredentialsInUriError) as refused:
        filesystem("s3://bucket/x")
    _assert_no_secret(str(refused.value))


TABLE = "security.results"


def _entries(tmp: Path) -> dict[str, list[str]]:
    """One command line per place a URI is given, ``S3_URI`` / ``HTTP_URI`` in it."""
    local = str(tmp / "local")
    tiny = ["--pretrained", "none", "--model", "vip2clip-tiny"]
    data, runs = f"dataset.uri={local}", f"storage_uri={local}"
    return {
        "score source": ["score", S3_URI, TABLE],
        "score table": ["score", local, S3_URI],
        "score catalog": ["score", local, TABLE, "--catalog", S3_URI],
        "score weights": ["score", local, TABLE, "--weights", S3_URI],
        "score learner": ["score", local, TABLE, *tiny, "--learner", S3_URI],
        "score endpoint": ["score", "s3://bucket/in", TABLE, "--endpoint-url", HTTP_URI],
        "score endpoint set": ["score", local, TABLE, "--set", f"storage.endpoint_url={HTTP_URI}"],
        "evaluate dataset": ["evaluate", S3_URI],
        "evaluate output": ["evaluate", local, "-o", S3_URI],
        "evaluate weights": ["evaluate", local, "--weights", S3_URI],
        "evaluate learner": ["evaluate", local, *tiny, "--learner", S3_URI],
        "train dataset": ["train", "--set", f"dataset.uri={S3_URI}", "--set", runs],
        "train storage": ["train", "--set", data, "--set", f"storage_uri={S3_URI}"],
        "train print-config": ["train", "--set", data, "--set", f"storage_uri={S3_URI}",
                               "--print-config"],
        "train weights": ["train", "--set", data, "--set", runs,
                          "--set", f"detector.backbone.weights={S3_URI}"],
        "demo source": ["demo", "--workdir", local, "--source", S3_URI],
        "demo learner": ["demo", "--workdir", local, "--learner", S3_URI],
        "demo weights": ["demo", "--workdir", local, "--backbone-weights", S3_URI],
        "query table": ["query", "SELECT 1", "--table", S3_URI],
        "query catalog": ["query", "SELECT 1", "--table", TABLE, "--catalog", S3_URI],
        "report table": ["report", "--table", S3_URI, "-o", str(tmp / "r.html")],
        "report output": ["report", "--table", TABLE, "-o", S3_URI],
        "submit source": ["submit", "--project-dir", str(REPO), "--address", "http://127.0.0.1:9",
                          "score", S3_URI, TABLE],
        "submit set": ["submit", "--project-dir", str(REPO), "--address", "http://127.0.0.1:9",
                       "score", local, TABLE, "--set", f"detector.learner={S3_URI}"],
        "submit address": ["submit", "--project-dir", str(REPO), "--address", HTTP_URI,
                           "score", local, TABLE],
        "jobs address": ["jobs", "list", "--address", HTTP_URI],
    }  # fmt: skip


ENTRIES = sorted(_entries(Path("/")))


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_cli_entry_refuses_credentials_in_uris_and_never_echoes_them(
    entry: str, tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "local").mkdir()
    with caplog.at_level(logging.DEBUG):
        code = main(_entries(tmp_path)[entry])
    out, err = capfd.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("vip2clip: error:")]
    assert code != 0 and len(errors) == 1, out + err
    assert "credentials in a URI are refused" in errors[0] or "with credentials" in errors[0]
    assert "credential chain" in errors[0] and "Traceback" not in err
    _assert_no_secret(out + err + "\n".join(r.getMessage() for r in caplog.records))
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert not [p for p in written if any(s.encode() in p.read_bytes() for s in SECRETS)]


def _assert_no_secret(text: str) -> None:
    leaked = [s for s in SECRETS if s in text] + [s for s in SECRET.split("/") if s in text]
    assert not leaked, text[-2000:]
