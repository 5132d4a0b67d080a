"""One door to files and objects: local paths and ``s3://`` URIs alike.

Credentials follow the standard AWS chain (environment, shared config and
credentials files, container and instance roles); the S3 endpoint follows
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (S3-compatible stores such as
MinIO), and every setting can be overridden explicitly in
:class:`StorageConfig`. Secrets never live in the config: they come from the
chain on each node, so they never travel in job metadata or task arguments. A URI
that carries credentials (``s3://KEY:SECRET@bucket/...``) is refused wherever it is
given (:func:`check_uri`, applied by :func:`filesystem` and by the configs' ``SafeUri``
fields): written into a URI, a secret would end up in logs, job listings and rows.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Annotated, Any

import fsspec
import pyarrow.fs as pafs
from pydantic import AfterValidator, Field

from vip2clip.config import FrozenConfig
from vip2clip.errors import CredentialsInUriError, StorageError

S3_SCHEMES = ("s3", "s3a")
S3_ENDPOINT_ENVS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
CREDENTIALS_HINT = (
    "use the credential chain instead: S3 keys come from AWS_* environment variables, "
    "~/.aws files or an instance/pod role, other secrets from the environment"
)
_SCHEME_PREFIX = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://")
_AUTHORITY_END = re.compile(r"[/?#]")


def has_userinfo(uri: str) -> bool:
    """Whether ``uri`` carries credentials before its host (``scheme://user:secret@host``).

    A password with a ``/`` in it (AWS secret keys have them) ends a URL parser's
    authority early; a non-numeric "port" followed by an ``@`` catches that form too.

    >>> has_userinfo("s3://AKIA:abc/def@bucket/x.png"), has_userinfo("s3://bucket/img@2x.png")
    (True, False)
    """
    text = uri.strip()
    if not _SCHEME_PREFIX.match(text):
        return False
    rest = text.split("://", 1)[1]
    authority = _AUTHORITY_END.split(rest, maxsplit=1)[0]
    if "@" in authority:
        return True
    port = authority.rpartition(":")[2] if ":" in authority else ""
    return ":" in authority and not port.isdigit() and "@" in rest


def hide_userinfo(uri: str) -> str:
    """``uri`` with everything between ``://`` and its last ``@`` hidden (for messages).

    >>> hide_userinfo("s3://KEY:SECRET@bucket/in")
    's3://***@bucket/in'
    """
    if not has_userinfo(uri):
        return uri
    scheme, rest = uri.strip().split("://", 1)
    return f"{scheme}://***@{rest.rpartition('@')[2]}"


def check_uri(uri: str) -> str:
    """Return ``uri`` unchanged, or raise :class:`CredentialsInUriError` when it carries
    credentials (the message never contains them)."""
    if has_userinfo(uri):
        raise CredentialsInUriError(
            f"{hide_userinfo(uri)}: credentials in a URI are refused; {CREDENTIALS_HINT}"
        )
    return uri


def _no_credentials(uri: str | None) -> str | None:
    if uri is not None and has_userinfo(uri):
        # pydantic reports this message, never the value (see vip2clip.config.load_config)
        raise ValueError(
            f"{hide_userinfo(uri)}: credentials in a URI are refused; {CREDENTIALS_HINT}"
        )
    return uri


SafeUri = Annotated[str, AfterValidator(_no_credentials)]
"""A local path or URI of a config; one that carries credentials is refused."""
DEFAULT_CACHE_DIR = Path(os.environ.get("VIP2CLIP_CACHE_DIR", Path.home() / ".cache" / "vip2clip"))


class StorageConfig(FrozenConfig):
    """Object-store settings that are safe to log (no secrets)."""

    endpoint_url: SafeUri | None = Field(
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
    """Return the fsspec filesystem serving ``uri`` and the path inside it.

    Raises :class:`CredentialsInUriError` for a URI that carries credentials.
    """
    storage = storage or StorageConfig()
    check_uri(uri)
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


# user@ or user:password@ after a scheme; a password may hold "/" (AWS secret keys do), so
# after a ":" everything up to the token's last "@" is hidden.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?:[^\s/@:]*:[^\s]*@|[^\s/@]+@)")


def redact_userinfo(text: str) -> str:
    """Hide ``user:password@`` parts of URIs in ``text`` (for logs, reports, summaries).

    >>> redact_userinfo("http://user:pw@gateway:9091/x")
    'http://***@gateway:9091/x'
    >>> redact_userinfo("s3://AKIA:abc/def@bucket/in and s3://bucket/img@2x.png")
    's3://***@bucket/in and s3://bucket/img@2x.png'
    """
    return _USERINFO.sub(r"\g<scheme>***@", text)


def s3_endpoint(storage: StorageConfig) -> str | None:
    """The S3 endpoint to use: the config's, else ``AWS_ENDPOINT_URL(_S3)``, else AWS's.

    Raises :class:`CredentialsInUriError` for an endpoint that carries credentials.
    """
    endpoint = storage.endpoint_url or next(
        (os.environ[name] for name in S3_ENDPOINT_ENVS if os.environ.get(name)), None
    )
    return check_uri(endpoint) if endpoint else None


def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0].lower() if "://" in uri else ""


def _s3_filesystem(storage: StorageConfig) -> fsspec.AbstractFileSystem:
    client_kwargs: dict[str, Any] = {}
    endpoint = s3_endpoint(storage)
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
