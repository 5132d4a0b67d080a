"""Bounded reads: refusals come before any byte is held, the cap holds while streaming."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from vip2clip.data.decode import ERROR_REASONS, REFUSED_READ_REASONS, TRANSIENT_REASONS
from vip2clip.scoring.reads import ReadError, read_bounded
from vip2clip.storage import StorageConfig

# Regular files that report size 0 and still have content: only the streaming cap sees it.
PROC_STATUS = "/proc/self/status"


def _reason(uri: str, **kwargs: Any) -> str:
    with pytest.raises(ReadError) as caught:
        read_bounded(uri, StorageConfig(), **kwargs)
    return caught.value.reason


def test_refusals_are_permanent_known_reasons() -> None:
    assert REFUSED_READ_REASONS <= ERROR_REASONS
    assert not REFUSED_READ_REASONS & TRANSIENT_REASONS


def test_the_cap_holds_while_streaming_when_the_size_lies() -> None:
    assert Path(PROC_STATUS).stat().st_size == 0
    content = read_bounded(PROC_STATUS, StorageConfig(), max_bytes=1024**2)
    assert len(content) > 100
    assert _reason(PROC_STATUS, max_bytes=100) == "too_large"


def test_a_file_exactly_at_the_cap_is_read(tmp_path: Path) -> None:
    image = tmp_path / "a.png"
    image.write_bytes(b"x" * 64)
    assert read_bounded(str(image), StorageConfig(), max_bytes=64) == b"x" * 64
    assert _reason(str(image), max_bytes=63) == "too_large"


def test_a_known_size_refuses_without_touching_the_store() -> None:
    # No endpoint answers for this bucket: a request would fail, not refuse.
    assert _reason("s3://no-such-bucket/x.png", max_bytes=10, known_size=11) == "too_large"


def test_a_listing_size_is_not_trusted_alone(tmp_path: Path) -> None:
    image = tmp_path / "grown.png"
    image.write_bytes(b"x" * 200)  # grew after the listing saw 10 bytes
    assert _reason(str(image), max_bytes=100, known_size=10) == "too_large"


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("http://127.0.0.1:9/x.png", "unsupported_uri"),
        ("ftp://host/x.png", "unsupported_uri"),
        ("/tmp/with\0nul.png", "unsupported_uri"),
        ("/dev/zero", "not_a_file"),
        ("/dev/null", "not_a_file"),
        ("/", "not_a_file"),
        ("/" + "n" * 300 + ".png", "name_too_long"),
        ("/nonexistent-folder/x.png", "object_missing"),
    ],
)
def test_entries_that_are_never_opened(entry: str, reason: str) -> None:
    assert _reason(entry) == reason


def test_symlink_loops_and_fifos_are_not_files(tmp_path: Path) -> None:
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    os.mkfifo(tmp_path / "pipe.png")  # opening it for reading would block forever
    assert _reason(str(loop)) == "not_a_file"
    assert _reason(str(tmp_path / "pipe.png")) == "not_a_file"


@pytest.mark.integration
def test_s3_objects_are_fetched_with_a_capped_range(s3_server: Any) -> None:
    bucket = s3_server.new_bucket("capped")
    s3_server.client().put_object(Bucket=bucket, Key="k.png", Body=b"y" * 2048)
    uri = f"s3://{bucket}/k.png"
    assert read_bounded(uri, StorageConfig(), max_bytes=2048) == b"y" * 2048
    assert _reason(uri, max_bytes=2047) == "too_large"
    assert _reason(f"s3://{bucket}/gone.png") == "object_missing"


def test_a_manifest_line_with_credentials_keeps_no_secret_and_is_refused() -> None:
    import pyarrow as pa

    from vip2clip.scoring.source import manifest_to_listing

    secret = "wJalrXUtnFEMI-K7MDENG"
    line = f"s3://AKIAEXAMPLE:{secret}@bucket/night/a.png"
    listing = manifest_to_listing(pa.table({"text": [line]}), base="/tmp")
    (uri,) = listing.column("source_uri").to_pylist()
    assert secret not in uri and uri.endswith("@bucket/night/a.png")
    with pytest.raises(ReadError) as refused:
        read_bounded(uri, StorageConfig(), max_bytes=1024)
    assert refused.value.reason == "unsupported_uri" and secret not in refused.value.detail
