"""The private runtime parent: created 0700, closed if opened up, refused if not ours."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from vip2clip.errors import ClusterError
from vip2clip.ops import runtime_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_the_parent_is_created_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(runtime_dir.RUNTIME_DIR_ENV, str(tmp_path / "rt"))
    root = runtime_dir.new_session_root("ray-")
    assert root.parent == tmp_path / "rt"
    assert _mode(root.parent) == 0o700 and _mode(root) == 0o700
    assert runtime_dir.is_private(root.parent)


def test_an_opened_up_parent_of_ours_is_closed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "rt"
    parent.mkdir(mode=0o777)
    parent.chmod(0o777)
    monkeypatch.setenv(runtime_dir.RUNTIME_DIR_ENV, str(parent))
    assert runtime_dir.private_parent() == parent
    assert _mode(parent) == 0o700


def test_a_planted_symlink_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = tmp_path / "attacker"
    elsewhere.mkdir()
    (tmp_path / "rt").symlink_to(elsewhere)
    monkeypatch.setenv(runtime_dir.RUNTIME_DIR_ENV, str(tmp_path / "rt"))
    with pytest.raises(ClusterError, match="not a folder owned by you"):
        runtime_dir.private_parent()


def test_the_default_parent_is_per_user() -> None:
    assert runtime_dir.default_parent().name.startswith("vip2clip-")
