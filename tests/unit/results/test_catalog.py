"""Catalogs the pyiceberg way: environment variables, .pyiceberg.yaml, an embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.catalog.sql import SqlCatalog

from vip2clip.errors import ConfigError, StorageError
from vip2clip.results import CatalogSpec, resolve_catalog
from vip2clip.results.catalog import EMBEDDED_CATALOG, HOME_ENV, shareable


def _sql_env(monkeypatch: pytest.MonkeyPatch, name: str, folder: Path) -> None:
    prefix = f"PYICEBERG_CATALOG__{name.upper()}__"
    (folder / "wh").mkdir(parents=True)
    monkeypatch.setenv(f"{prefix}TYPE", "sql")
    monkeypatch.setenv(f"{prefix}URI", f"sqlite:///{folder / 'cat.db'}")
    monkeypatch.setenv(f"{prefix}WAREHOUSE", (folder / "wh").as_uri())
    monkeypatch.setenv(f"{prefix}S3__ENDPOINT", "http://127.0.0.1:9000")
    monkeypatch.setenv(f"{prefix}S3__SECRET_ACCESS_KEY", "do-not-ship")


def test_embedded_default_when_nothing_is_configured(tmp_path: Path) -> None:
    spec = resolve_catalog()
    home = tmp_path / "vip2clip-home"
    assert spec.embedded and spec.name == EMBEDDED_CATALOG
    assert spec.properties == {
        "type": "sql",
        "uri": f"sqlite:///{home / 'catalog.db'}",
        "warehouse": (home / "warehouse").as_uri(),
    }
    assert not home.exists()  # created on first open, not on resolve
    catalog = spec.load()
    assert isinstance(catalog, SqlCatalog)
    assert (home / "catalog.db").is_file() and (home / "warehouse").is_dir()


def test_embedded_home_that_cannot_be_created_is_a_storage_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv(HOME_ENV, str(blocker / "home"))
    with pytest.raises(StorageError, match=HOME_ENV):
        resolve_catalog().load()


def test_named_catalog_from_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _sql_env(monkeypatch, "prod", tmp_path / "prod")
    spec = resolve_catalog("prod")
    assert not spec.embedded and spec.name == "prod"
    assert spec.properties["uri"] == f"sqlite:///{tmp_path / 'prod' / 'cat.db'}"
    assert spec.properties["s3.endpoint"] == "http://127.0.0.1:9000"  # nested: S3__ENDPOINT
    assert "s3.secret-access-key" not in spec.properties  # the secret stays on the node
    assert isinstance(spec.load(), SqlCatalog)


def test_default_catalog_name_is_honoured(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _sql_env(monkeypatch, "default", tmp_path / "d")
    spec = resolve_catalog()
    assert spec.name == "default" and not spec.embedded


def test_named_catalog_from_pyiceberg_yaml(isolated_catalogs: Path, tmp_path: Path) -> None:
    (tmp_path / "wh").mkdir()
    (isolated_catalogs / ".pyiceberg.yaml").write_text(
        "catalog:\n"
        "  lake:\n"
        "    type: sql\n"
        f"    uri: sqlite:///{tmp_path / 'lake.db'}\n"
        f"    warehouse: {(tmp_path / 'wh').as_uri()}\n"
        "    s3.access-key-id: AKIA-not-shipped\n"
    )
    spec = resolve_catalog("lake")
    assert spec.properties == {
        "type": "sql",
        "uri": f"sqlite:///{tmp_path / 'lake.db'}",
        "warehouse": (tmp_path / "wh").as_uri(),
    }
    # A worker gets only the shareable properties and merges its own configuration.
    shipped = CatalogSpec(name="lake", properties=spec.properties)
    assert isinstance(shipped.load(), SqlCatalog)


def test_unknown_catalog_is_a_one_line_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_catalog("nowhere")
    message = str(info.value)
    assert "\n" not in message
    assert "'nowhere'" in message and "PYICEBERG_CATALOG__NOWHERE__" in message


def test_unreachable_catalog_is_a_storage_error_without_credentials() -> None:
    spec = CatalogSpec(
        name="pg", properties={"type": "sql", "uri": "postgresql+psycopg://u:hunter2@127.0.0.1:1/x"}
    )
    with pytest.raises(StorageError) as info:
        spec.load()
    assert "hunter2" not in str(info.value) and "\n" not in str(info.value)
    assert "hunter2" not in spec.describe()


def test_shareable_drops_secrets_and_userinfo() -> None:
    properties = {
        "type": "rest",
        "uri": "https://catalog.example/api",
        "warehouse": "s3://bucket/wh",
        "s3.endpoint": "https://s3.example",
        "s3.access-key-id": "AKIA",
        "s3.secret-access-key": "secret",
        "s3.session-token": "token",
        "token": "bearer",
        "credential": "client:secret",
        "rest.sigv4-enabled": True,
        "jdbc.password": "pw",
        "other-uri": "postgresql://user:pw@db/cat",
        "header.X-Iceberg-Access-Delegation": "vended-credentials",
        "header.Authorization": "Bearer abc",
        "nested": {"a": "b"},
    }
    assert shareable(properties) == {
        "type": "rest",
        "uri": "https://catalog.example/api",
        "warehouse": "s3://bucket/wh",
        "s3.endpoint": "https://s3.example",
        "rest.sigv4-enabled": "True",
        "header.X-Iceberg-Access-Delegation": "vended-credentials",
    }


def test_a_default_catalog_that_is_not_configured_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYICEBERG_DEFAULT_CATALOG", "nowhere")
    with pytest.raises(ConfigError, match="'nowhere' is not configured"):
        resolve_catalog(None)
