"""Configuration plumbing shared by every typed config.

Configs are frozen pydantic models, one per concern, defined next to the code
they configure. This module only loads them from YAML and applies ``key=value``
overrides from the command line, so every command handles configs one way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vip2clip.errors import ConfigError

ConfigT = TypeVar("ConfigT", bound=BaseModel)

# Upper bounds of sizes a config can ask for: far above real use, low enough that a typo
# fails at validation instead of exhausting a node's memory hours into a night.
MAX_BATCH_SIZE = 1024  # images (or objects) per batch; ViT-L/14 at 518 px fits ~64 per GPU
MAX_IMAGE_SIZE = 1024  # px per side; 4x the tokens of the paper's 518 px (ViT-L/14: 73 x 73)

BatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)]
Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
"""A score or decision threshold: scores are probabilities in [0, 1]."""


class FrozenConfig(BaseModel):
    """Base of every config: immutable and strict about unknown keys."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``"a.b=value"`` into ``(["a", "b"], value)``; the value is parsed as YAML.

    >>> parse_override("scoring.batch_size=16")
    (['scoring', 'batch_size'], 16)
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {text!r} is not of the form key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({exc})") from None
    return key.strip().split("."), value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``key.path=value`` override set."""
    merged: dict[str, Any] = _deep_copy(data)
    for text in overrides:
        path, value = parse_override(text)
        node = merged
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {text!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return merged


def load_config(
    model: type[ConfigT],
    path: str | Path | None = None,
    overrides: Iterable[str] = (),
    base: Mapping[str, Any] | None = None,
) -> ConfigT:
    """Build ``model`` from an optional YAML file, a base mapping and overrides.

    Precedence, lowest first: ``base``, the YAML file, the overrides.
    """
    data: dict[str, Any] = _deep_copy(base or {})
    if path is not None:
        data = _merge(data, read_yaml(path))
    data = apply_overrides(data, overrides)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        raise ConfigError(f"invalid {model.__name__} at {where}: {first['msg']}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from a local file with a clear error when it is not one."""
    file = Path(path)
    try:
        loaded = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {file} does not exist") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {file} is not valid YAML: {exc}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {file} must hold a mapping at the top level")
    return loaded


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = _deep_copy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _deep_copy(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, Mapping) else v for k, v in data.items()}
