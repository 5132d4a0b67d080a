"""Bounded reads of one listed object: refused before its bytes are held, or read under a cap.

Whatever a listing or a manifest names, reading it either returns at most
``max_bytes`` bytes or raises :class:`ReadError` with a stable reason:

* ``unsupported_uri``: a scheme other than a local path, ``file://`` or ``s3://``
  (``http://...``), or a path the OS cannot name (an embedded NUL byte);
* ``name_too_long``: the OS refuses the name (``ENAMETOOLONG``);
* ``not_a_file``: a directory, FIFO, socket, character or block device
  (``/dev/zero``), or a symlink loop. Local paths are ``stat``-ed first and never
  opened when they are not regular files (opening a FIFO blocks, opening some
  devices has side effects); the descriptor is opened non-blocking and checked
  again, so a path swapped for a FIFO in between cannot block the reader;
* ``too_large``: more than ``max_bytes``. A size known from the listing or from
  ``stat`` refuses early (a 40 GiB sparse file is never read), but the cap is
  also enforced while streaming, since a local file can grow and special files
  report size 0. S3 objects are fetched with one ranged GET of ``max_bytes + 1``
  bytes, so the store never sends more than the cap either.

These reasons are permanent; ``object_missing`` and ``permission_denied`` come
from here too, other failures are left to the caller's retry loop.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

from vip2clip import storage
from vip2clip.data.decode import (
    NAME_TOO_LONG,
    NOT_A_FILE,
    OBJECT_MISSING,
    PERMISSION_DENIED,
    TOO_LARGE,
    UNSUPPORTED_URI,
)
from vip2clip.errors import ConfigError, StorageError
from vip2clip.storage import StorageConfig

MIB = 1024**2
# Far above any camera frame or inspection image, far below a node's memory: an
# object is held once as bytes (plus one copy while joining chunks) before decoding.
MAX_OBJECT_BYTES_DEFAULT = 256 * MIB
READ_CHUNK_BYTES = 8 * MIB
DETAIL_MAX_CHARS = 300
_MISSING_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR})


class ReadError(Exception):
    """An object could not be read; ``reason`` is a stable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def read_bounded(
    uri: str,
    storage_config: StorageConfig,
    max_bytes: int = MAX_OBJECT_BYTES_DEFAULT,
    known_size: int | None = None,
) -> bytes:
    """The bytes of ``uri``, at most ``max_bytes`` of them.

    Raises:
        ReadError: a permanent refusal or a missing/forbidden object (see the module).
        Exception: anything else (network, throttling); the caller may retry.
    """
    if known_size is not None and known_size > max_bytes:
        raise _too_large(known_size, max_bytes)
    try:
        fs, path = storage.filesystem(uri, storage_config)
    except (StorageError, ConfigError) as exc:  # unknown scheme, credentials in the URI
        raise ReadError(UNSUPPORTED_URI, str(exc)[:DETAIL_MAX_CHARS]) from None
    if storage.is_remote(uri):
        return _read_remote(fs, path, max_bytes)
    return _read_local(path, max_bytes)


def _read_remote(fs: Any, path: str, max_bytes: int) -> bytes:
    try:
        # One ranged GET: the store sends at most one byte past the cap.
        data: bytes = fs.cat_file(path, start=0, end=max_bytes + 1)
    except FileNotFoundError as exc:
        raise ReadError(OBJECT_MISSING, _detail(exc)) from None
    except PermissionError as exc:
        raise ReadError(PERMISSION_DENIED, _detail(exc)) from None
    except IsADirectoryError as exc:
        raise ReadError(NOT_A_FILE, _detail(exc)) from None
    except OSError:
        # S3 answers a ranged GET of an empty object with 416 (range not satisfiable), which
        # s3fs raises with the errno of transient faults: ask the size before a retry.
        if _remote_size(fs, path) == 0:
            return b""
        raise
    if len(data) > max_bytes:
        raise _too_large(None, max_bytes)
    return data


def _remote_size(fs: Any, path: str) -> int | None:
    try:
        size = fs.info(path).get("size")
    except Exception:  # the caller re-raises the read's own error
        return None
    return int(size) if size is not None else None


def _read_local(path: str, max_bytes: int) -> bytes:
    try:
        info = Path(path).stat()
    except OSError as exc:
        raise (_refusal(exc) or exc) from None
    except ValueError as exc:  # an embedded NUL byte: no such path can exist
        raise ReadError(UNSUPPORTED_URI, _detail(exc)) from None
    _check_regular(info.st_mode, path)
    if info.st_size > max_bytes:
        raise _too_large(info.st_size, max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise (_refusal(exc) or exc) from None
    try:
        _check_regular(os.fstat(fd).st_mode, path)  # swapped since the stat?
        return _read_capped(fd, max_bytes)
    finally:
        os.close(fd)


def _read_capped(fd: int, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = os.read(fd, min(READ_CHUNK_BYTES, max_bytes + 1 - total))
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > max_bytes:
            raise _too_large(None, max_bytes)
        chunks.append(chunk)


def _check_regular(mode: int, path: str) -> None:
    if not stat.S_ISREG(mode):
        raise ReadError(NOT_A_FILE, f"{_kind(mode)}, not a regular file: {path}"[:DETAIL_MAX_CHARS])


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")


def _refusal(exc: OSError) -> ReadError | None:
    """The stable reason for an ``OSError`` of ``stat``/``open``, or ``None``."""
    if exc.errno == errno.ENAMETOOLONG:
        return ReadError(NAME_TOO_LONG, _detail(exc))
    if exc.errno in _MISSING_ERRNOS:
        return ReadError(OBJECT_MISSING, _detail(exc))
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ReadError(PERMISSION_DENIED, _detail(exc))
    if exc.errno in (errno.ELOOP, errno.EISDIR):
        return ReadError(NOT_A_FILE, _detail(exc))
    return None  # EIO, ESTALE, ...: possibly transient, the caller retries


def _too_large(size: int | None, max_bytes: int) -> ReadError:
    what = f"{size} bytes" if size is not None else "more bytes than that"
    return ReadError(TOO_LARGE, f"{what}; the limit is max_object_bytes={max_bytes}")


def _detail(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:DETAIL_MAX_CHARS]
