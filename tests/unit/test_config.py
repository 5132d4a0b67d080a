"""Config plumbing: YAML files and overrides are data only, never code."""

from __future__ import annotations

from pathlib import Path

import pytest

from vip2clip.config import load_config, parse_override, read_yaml
from vip2clip.errors import ConfigError
from vip2clip.scoring import ScoringConfig


def _tag(marker: Path) -> str:
    return f'!!python/object/apply:os.system ["touch {marker}"]'


def test_yaml_python_tags_in_a_config_file_are_refused_unrun(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "score.yaml"
    path.write_text(f"source: {_tag(marker)}\noutput: out\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_yaml(path)
    with pytest.raises(ConfigError):
        load_config(ScoringConfig, path)
    assert not marker.exists()


def test_yaml_python_tags_in_an_override_are_refused_unrun(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_override(f"source={_tag(marker)}")
    assert not marker.exists()
