"""One door to files and objects: local paths and ``s3://`` URIs alike.

Credentials follow the standard AWS chain (environment, shared config and
credentials files, container and instance roles); the S3 endpoint follows
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (S3-compatible stores such as
MinIO), and every setting can be overridden explicitly in
:class:`StorageConfig`. Secrets never live in the config: they come from the
chain on each node, so they never travel in job metadata or task arguments.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any

import fsspec
import pyarrow.fs as pafs
from pydantic import Field

from vip2clip.config import FrozenConfig
from vip2clip.errors import StorageError

S3_SCHEMES = ("s3", "s3a")
DEFAULT_CACHE_DIR = Path(os.environ.get("VIP2CLIP_CACHE_DIR", Path.home() / ".cache" / "vip2clip"))


class StorageConfig(FrozenConfig):
    """Object-store settings that are safe to log (no secrets)."""

    endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint; default: AWS_ENDPOINT_URL(_S3)"
    )
    region: str | None = Field(default=None, description="default: the AWS chain's region")
    profile: str | None = Field(default=None, description="named profile of the AWS config files")
    anonymous: bool = Field(default=False, description="unsigned requests (public buckets)")
    max_attempts: int = Field(default=8, ge=1, description="attempts per S3 request (retries)")


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names an object in an object store rather than a local path."""
    return _scheme(uri) in S3_SCHEMES


def filesystem(
    uri: str, storage: StorageConfig | None = None
) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the fsspec filesystem serving ``uri`` and the path inside it."""
    storage = storage or StorageConfig()
    scheme = _scheme(uri)
    if scheme in S3_SCHEMES:
        return _s3_filesystem(storage), uri.split("://", 1)[1].rstrip("/")
    if scheme not in ("", "file"):
        raise StorageError(
            f"unsupported URI scheme {scheme!r} in {uri!r}; use a local path or s3://"
        )
    path = uri.split("://", 1)[1] if scheme == "file" else uri
    return fsspec.filesystem("file"), str(Path(path).expanduser().absolute())


def pyarrow_filesystem(
    uri: str, storage: StorageConfig | None = None
) -> tuple[pafs.FileSystem, str]:
    """Like :func:`filesystem`, wrapped for pyarrow and Ray Data readers and writers."""
    fs, path = filesystem(uri, storage)
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def join(uri: str, *parts: str) -> str:
    """Join path parts onto a local path or object URI with ``/``."""
    out = uri.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def read_bytes(uri: str, storage: StorageConfig | None = None) -> bytes:
    """Read a whole file or object."""
    fs, path = filesystem(uri, storage)
    try:
        data: bytes = fs.cat_file(path)
    except FileNotFoundError:
        raise StorageError(f"{uri} does not exist") from None
    except PermissionError:
        raise StorageError(f"{uri}: permission denied") from None
    except OSError as exc:
        raise StorageError(f"{uri}: could not read ({exc})") from None
    return data


def write_bytes(uri: str, data: bytes, storage: StorageConfig | None = None) -> None:
    """Write a whole file or object, creating parent folders of local paths."""
    fs, path = filesystem(uri, storage)
    try:
        if not is_remote(uri):
            fs.makedirs(str(Path(path).parent), exist_ok=True)
        fs.pipe_file(path, data)
    except OSError as exc:
        raise StorageError(f"{uri}: could not write ({exc})") from None


def exists(uri: str, storage: StorageConfig | None = None) -> bool:
    """Whether a file or object (or prefix) exists."""
    fs, path = filesystem(uri, storage)
    return bool(fs.exists(path))


def local_copy(
    uri: str, storage: StorageConfig | None = None, cache_dir: Path | None = None
) -> Path:
    """Return a local path holding the content of ``uri``; remote objects are cached.

    The cache key includes the object's ETag (or size and mtime), so a replaced
    object is fetched again while repeated loads on one node read it once.
    """
    if not is_remote(uri):
        local = Path(filesystem(uri, storage)[1])
        if not local.is_file():
            raise StorageError(f"{uri} does not exist or is not a file")
        return local
    fs, path = filesystem(uri, storage)
    try:
        info: dict[str, Any] = fs.info(path)
    except FileNotFoundError:
        raise StorageError(f"{uri} does not exist") from None
    except OSError as exc:
        raise StorageError(f"{uri}: could not read ({exc})") from None
    identity = f"{uri}|{info.get('ETag') or info.get('etag')}|{info.get('size')}"
    key = hashlib.sha256(identity.encode()).hexdigest()[:24]
    target = (cache_dir or DEFAULT_CACHE_DIR) / "objects" / key / Path(path).name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(target.suffix + f".part{os.getpid()}")
        try:
            fs.get_file(path, str(partial))
        except OSError as exc:
            raise StorageError(f"{uri}: could not download ({exc})") from None
        partial.replace(target)
    return target


_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def redact_userinfo(text: str) -> str:
    """Hide ``user:password@`` parts of URIs in ``text`` (for logs, reports, summaries).

    >>> redact_userinfo("http://user:pw@gateway:9091/x")
    'http://***@gateway:9091/x'
    """
    return _USERINFO.sub(r"\g<scheme>***@", text)


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower() if "://" in uri else ""


def _s3_filesystem(storage: StorageConfig) -> fsspec.AbstractFileSystem:
    client_kwargs: dict[str, Any] = {}
    endpoint = (
        storage.endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
    )
    if endpoint:
        client_kwargs["endpoint_url"] = endpoint
    if storage.region:
        client_kwargs["region_name"] = storage.region
    return fsspec.filesystem(
        "s3",
        anon=storage.anonymous,
        profile=storage.profile,
        client_kwargs=client_kwargs,
        config_kwargs={"retries": {"max_attempts": storage.max_attempts, "mode": "standard"}},
        skip_instance_cache=False,
    )
