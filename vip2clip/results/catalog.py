"""Iceberg catalogs, configured the pyiceberg way, with an embedded default.

A catalog NAME is looked up exactly as pyiceberg does it: ``.pyiceberg.yaml``
(in ``$PYICEBERG_HOME``, the home directory or the working directory) and
``PYICEBERG_CATALOG__<NAME>__<KEY>`` environment variables, so any pyiceberg
user's configuration works unchanged. When no catalog is named and pyiceberg has
no default configured, an **embedded** catalog is used: SQLite plus a local
warehouse under ``$VIP2CLIP_HOME`` (default ``~/.local/share/vip2clip``). It
needs no server, which is what ``make demo`` and a first ``vip2clip score`` use.

Ray workers get a :class:`CatalogSpec` with the catalog's *non-secret*
properties; each node merges them with its own pyiceberg configuration, where
credentials live (like the AWS chain, secrets never travel in task arguments).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyarrow.fs import AwsStandardS3RetryStrategy
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.io import S3_RETRY_STRATEGY_IMPL
from pyiceberg.utils.config import Config

from vip2clip.errors import ConfigError, StorageError
from vip2clip.storage import StorageConfig, check_uri, redact_userinfo

HOME_ENV = "VIP2CLIP_HOME"
DEFAULT_HOME = Path.home() / ".local" / "share" / "vip2clip"
EMBEDDED_CATALOG = "vip2clip"
DEFAULT_CATALOG_KEY = "default-catalog"  # pyiceberg's key naming the default catalog
EMBEDDED_DB = "catalog.db"
EMBEDDED_WAREHOUSE = "warehouse"
# Property keys whose values must never leave the driver (or reach a log).
_SECRET_KEY = re.compile(r"secret|password|passwd|token|credential|key-id|session|auth", re.I)
CATALOG_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_USERINFO = re.compile(r"://[^/@\s]+@")


class TableStorageRetry(AwsStandardS3RetryStrategy):
    """pyarrow's standard S3 retries with vip2clip's attempt count (pyiceberg's default is
    pyarrow's 3 attempts; pyiceberg builds the strategy by class name, without arguments)."""

    def __init__(self) -> None:
        super().__init__(max_attempts=StorageConfig().max_attempts)


# What a catalog gets unless its configuration says otherwise (on the driver and workers).
DEFAULT_PROPERTIES = {
    S3_RETRY_STRATEGY_IMPL: f"{TableStorageRetry.__module__}.{TableStorageRetry.__qualname__}"
}


def embedded_home() -> Path:
    """Folder of the embedded catalog: ``$VIP2CLIP_HOME`` or ``~/.local/share/vip2clip``."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME).expanduser().absolute()


@dataclass(frozen=True)
class CatalogSpec:
    """Which catalog to open, in a form that may travel to Ray workers (no secrets)."""

    name: str
    properties: dict[str, str] = field(default_factory=dict)
    embedded: bool = False

    def load(self) -> Catalog:
        """Open the catalog here, merging this node's pyiceberg configuration."""
        local = {} if self.embedded else _configured(self.name) or {}
        properties = {**DEFAULT_PROPERTIES, **local, **self.properties}
        if self.embedded:
            _prepare_embedded(properties)
        try:
            return load_catalog(self.name, **properties)
        except Exception as exc:  # drivers and servers raise many types; say which catalog
            raise StorageError(
                f"cannot open Iceberg catalog {self.name!r}: {type(exc).__name__}: "
                f"{redact_userinfo(str(exc).splitlines()[0] if str(exc) else '')}"
            ) from None

    def describe(self) -> str:
        """One line for logs: name and where it points, credentials hidden."""
        where = self.properties.get("uri") or self.properties.get("warehouse") or "configured"
        return f"{self.name} ({redact_userinfo(where)})"


def resolve_catalog(name: str | None = None) -> CatalogSpec:
    """The catalog ``name`` as configured for pyiceberg, or the embedded default.

    Raises:
        ConfigError: when ``name`` is given but pyiceberg has no configuration for it.
    """
    if name is None:
        config = Config()
        default = config.get_default_catalog_name()
        if _configured(default) is None and not config.config.get(DEFAULT_CATALOG_KEY):
            return _embedded_spec()
        name = default  # configured, or named as the default: then it must be configured
    check_catalog_name(name)
    configured = _configured(name)
    if configured is None:
        shown = redact_userinfo(name)
        raise ConfigError(
            f"Iceberg catalog {shown!r} is not configured: define it in .pyiceberg.yaml or "
            f"with PYICEBERG_CATALOG__{shown.upper()}__* variables (omit --catalog for the "
            "embedded default)"
        )
    return CatalogSpec(name=name, properties=shareable(configured))


def check_catalog_name(name: str) -> str:
    """Return ``name`` if it can name a pyiceberg catalog (never echoing credentials)."""
    check_uri(name)  # a URI with credentials given as a name: refused, never echoed
    if not CATALOG_NAME_PATTERN.fullmatch(name):
        raise ConfigError(
            f"catalog name {redact_userinfo(name)!r} is invalid: use letters, digits, '_' or '-'"
        )
    return name


def shareable(properties: dict[str, Any]) -> dict[str, str]:
    """The properties that may travel to workers: no secret keys, no userinfo in URIs."""
    return {
        str(k): str(v)
        for k, v in properties.items()
        if isinstance(v, str | int | float | bool)
        and not _SECRET_KEY.search(str(k))
        and not _USERINFO.search(str(v))
    }


def _configured(name: str) -> dict[str, Any] | None:
    # A fresh Config: pyiceberg's module-level one was read once, at import time.
    found = Config().get_catalog_config(name)
    return dict(found) if found else None


def _embedded_spec() -> CatalogSpec:
    home = embedded_home()
    return CatalogSpec(
        name=EMBEDDED_CATALOG,
        properties={
            "type": "sql",
            "uri": f"sqlite:///{home / EMBEDDED_DB}",
            "warehouse": (home / EMBEDDED_WAREHOUSE).as_uri(),
        },
        embedded=True,
    )


def _prepare_embedded(properties: dict[str, str]) -> None:
    home = Path(properties["uri"].removeprefix("sqlite:///")).parent
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
        (home / EMBEDDED_WAREHOUSE).mkdir(exist_ok=True)
    except OSError as exc:
        raise StorageError(
            f"cannot create the embedded catalog in {home}: {exc}; set {HOME_ENV}"
        ) from None
