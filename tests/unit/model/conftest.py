"""Tiny random models shared by the model tests."""

from __future__ import annotations

import pytest

from vip2clip.model import Backbone, BackboneSpec, load_backbone


@pytest.fixture(scope="session")
def tiny_backbone() -> Backbone:
    return load_backbone(BackboneSpec.tiny())
