"""A private parent folder for Ray session folders, token files and sockets.

Ray makes its temp and session folders (and ``runtime_resources/working_dir_files``,
where job packages are unpacked) mode 0777 without the sticky bit. Directly under
``/tmp`` that lets any local user replace a cached job package, which the next
job then runs as its submitter. Under a parent that only its owner can enter
(0700), those modes no longer matter. The parent is
``$VIP2CLIP_RUNTIME_DIR`` or ``<tempdir>/vip2clip-<uid>``: short, because Ray's
Unix socket paths inside it must stay under 108 bytes.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from vip2clip.errors import ClusterError

RUNTIME_DIR_ENV = "VIP2CLIP_RUNTIME_DIR"
PRIVATE_MODE = 0o700
_GROUP_OR_OTHER = 0o077


def private_parent() -> Path:
    """The per-user 0700 parent, created if needed and checked every time.

    Raises:
        ClusterError: the path exists but is a symlink, not a folder, or owned by
            another user (someone may have planted it).
    """
    configured = os.environ.get(RUNTIME_DIR_ENV)
    parent = Path(configured) if configured else default_parent()
    try:
        parent.mkdir(mode=PRIVATE_MODE, parents=True, exist_ok=True)
        info = parent.lstat()
    except OSError as exc:
        raise ClusterError(f"cannot create the private runtime folder {parent}: {exc}") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
        raise ClusterError(
            f"{parent} is not a folder owned by you (a symlink, a file or another user's "
            f"folder); remove it or set {RUNTIME_DIR_ENV} to a private folder"
        )
    if info.st_mode & _GROUP_OR_OTHER:
        parent.chmod(PRIVATE_MODE)  # ours, but opened up: close it before use
    return parent


def default_parent() -> Path:
    """``<tempdir>/vip2clip-<uid>`` (``/tmp/vip2clip-1000``)."""
    return Path(tempfile.gettempdir()) / f"vip2clip-{os.geteuid()}"


def new_session_root(prefix: str) -> Path:
    """A fresh folder (0700) under :func:`private_parent` for one Ray instance."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=private_parent()))


def is_private(folder: Path) -> bool:
    """Whether ``folder`` is a real folder of this user that nobody else can enter."""
    info = folder.lstat()
    return (
        stat.S_ISDIR(info.st_mode)
        and info.st_uid == os.geteuid()
        and not info.st_mode & _GROUP_OR_OTHER
    )
