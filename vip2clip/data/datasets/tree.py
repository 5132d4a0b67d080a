"""Listing a dataset root (local folder or object prefix) without reading any file content.

Object stores are listed one folder at a time and the listing is cached, so a
layout reader checks that thousands of entries exist with a few list calls
instead of one request per file.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from vip2clip.data.datasets.spec import IMAGE_EXTENSIONS
from vip2clip.errors import DatasetError
from vip2clip.storage import StorageConfig, filesystem, join


class DatasetTree:
    """Files under a dataset root, addressed by ``/``-separated paths relative to it."""

    def __init__(self, uri: str, storage: StorageConfig | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.fs, self.root = filesystem(uri, storage)
        self._index: dict[str, frozenset[str]] = {}
        # listings may predate files written since (s3fs caches them per process)
        self.fs.invalidate_cache(self.root)
        if not self.fs.isdir(self.root):
            raise DatasetError(f"dataset root {uri} does not exist or is not a folder")

    def uri_of(self, rel: str) -> str:
        """URI of a path relative to the root, in the form the root was given."""
        return join(self.uri, rel)

    def subdirs(self, rel: str = "") -> list[str]:
        """Sorted names of the folders directly under ``rel`` (empty when ``rel`` is absent)."""
        path = self._abs(rel)
        if not self.fs.isdir(path):
            return []
        entries = self.fs.ls(path, detail=True)
        names = {
            posixpath.basename(str(e["name"]).rstrip("/"))
            for e in entries
            if e.get("type") == "directory"
        }
        return sorted(n for n in names if n)

    def files(self, rel: str) -> list[str]:
        """Sorted relative paths of every file below ``rel`` (recursive)."""
        path = self._abs(rel)
        prefix = self.root.rstrip("/") + "/"
        found = self.fs.find(path) if self.fs.isdir(path) else []
        return sorted(str(p)[len(prefix) :] for p in found if str(p).startswith(prefix))

    def exists(self, rel: str) -> bool:
        """Whether the file ``rel`` exists; lists its top-level folder once and caches it."""
        rel = normalize_rel(rel)
        top = rel.split("/", 1)[0] if "/" in rel else ""
        if top not in self._index:
            self._index[top] = frozenset(self._list_top(top))
        return rel in self._index[top]

    def _list_top(self, top: str) -> list[str]:
        if top:
            return self.files(top)
        prefix = self.root.rstrip("/") + "/"
        return [
            str(e["name"])[len(prefix) :]
            for e in self.fs.ls(self.root, detail=True)
            if e.get("type") == "file" and str(e["name"]).startswith(prefix)
        ]

    def _abs(self, rel: str) -> str:
        rel = normalize_rel(rel)
        return f"{self.root.rstrip('/')}/{rel}" if rel else self.root


def normalize_rel(rel: str) -> str:
    """Normalise an index file path: ``/`` separators, no ``./``, no leading ``/``."""
    cleaned = rel.replace("\\", "/").strip().lstrip("/")
    if not cleaned:
        return ""
    return posixpath.normpath(cleaned)


def is_image(rel: str, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> bool:
    """Whether a file name ends with one of ``extensions`` (case-insensitive)."""
    lower = rel.lower()
    return any(lower.endswith(ext.lower()) for ext in extensions)


def stem_of(rel: str) -> str:
    """File name without folder and extension: ``a/b/000.png`` -> ``000``."""
    return posixpath.splitext(posixpath.basename(rel))[0]
