"""Every results test starts from no pyiceberg configuration and an empty embedded home."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vip2clip.results import table as results_table
from vip2clip.results.catalog import HOME_ENV


@pytest.fixture(autouse=True)
def isolated_catalogs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No ``.pyiceberg.yaml`` or ``PYICEBERG_*`` variable of the user's leaks into a test."""
    for key in list(os.environ):
        if key.startswith("PYICEBERG_"):
            monkeypatch.delenv(key)
    config_home = tmp_path / "pyiceberg-home"
    config_home.mkdir()
    monkeypatch.setenv("PYICEBERG_HOME", str(config_home))
    monkeypatch.setenv("HOME", str(config_home))  # pyiceberg also reads ~/.pyiceberg.yaml
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "vip2clip-home"))
    monkeypatch.setattr(results_table, "_WRITERS", {})
    yield config_home
