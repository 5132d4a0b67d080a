"""Backbone loading: random configs, OpenAI-format files (local and S3), clear errors."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import torch

from vip2clip.errors import BackboneUnavailableError
from vip2clip.model import Backbone, BackboneSpec, load_backbone
from vip2clip.storage import write_bytes


def test_tiny_config_is_registered_and_seeded(tiny_backbone: Backbone) -> None:
    again = load_backbone(BackboneSpec.tiny())
    other = load_backbone(BackboneSpec.tiny(seed=1))
    weight = "visual.conv1.weight"
    assert torch.equal(tiny_backbone.clip.state_dict()[weight], again.clip.state_dict()[weight])
    assert not torch.equal(tiny_backbone.clip.state_dict()[weight], other.clip.state_dict()[weight])
    assert tiny_backbone.depth == 4 and tiny_backbone.patch_size == 16
    assert not any(p.requires_grad for p in tiny_backbone.clip.parameters())


def _openai_file(backbone: Backbone, path: Path) -> Path:
    torch.save(backbone.clip.state_dict(), path)
    return path


def test_openai_format_file_loads_exactly(tiny_backbone: Backbone, tmp_path: Path) -> None:
    path = _openai_file(tiny_backbone, tmp_path / "clip.pt")
    loaded = load_backbone(BackboneSpec.from_file(str(path)))
    for name, tensor in tiny_backbone.clip.state_dict().items():
        assert torch.equal(loaded.clip.state_dict()[name], tensor), name
    assert loaded.identity.startswith("sha256:")


def test_named_model_file_loads(tiny_backbone: Backbone, tmp_path: Path) -> None:
    path = _openai_file(tiny_backbone, tmp_path / "clip.pt")
    spec = BackboneSpec(model="vip2clip-tiny", pretrained=None, weights=str(path))
    assert load_backbone(spec).depth == 4


@pytest.mark.integration
def test_file_on_s3_loads(tiny_backbone: Backbone, tmp_path: Path, s3_server) -> None:  # type: ignore[no-untyped-def]
    bucket = s3_server.new_bucket()
    local = _openai_file(tiny_backbone, tmp_path / "clip.pt")
    write_bytes(f"s3://{bucket}/weights/clip.pt", local.read_bytes())
    loaded = load_backbone(BackboneSpec.from_file(f"s3://{bucket}/weights/clip.pt"))
    assert loaded.embed_dim == tiny_backbone.embed_dim


def test_offline_pretrained_fails_fast_with_advice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(BackboneUnavailableError, match=r"backbone\.weights="):
        load_backbone(BackboneSpec(model="ViT-B-32", pretrained="openai"))
    assert time.monotonic() - started < 30


def test_unknown_model_and_tag_are_clear_errors() -> None:
    with pytest.raises(BackboneUnavailableError, match="unknown open_clip model"):
        load_backbone(BackboneSpec(model="ViT-Nope", pretrained=None))
    with pytest.raises(BackboneUnavailableError, match="no pretrained tag"):
        load_backbone(BackboneSpec(model="ViT-L-14-336", pretrained="nonsense"))


def test_garbage_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clip.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(BackboneUnavailableError):
        load_backbone(BackboneSpec.from_file(str(path)))


def test_spec_refuses_two_sources() -> None:
    with pytest.raises(ValueError, match="not both"):
        BackboneSpec(model="ViT-B-32", pretrained="openai", weights="/x.pt")


def test_weights_without_a_tag_replace_the_default_tag() -> None:
    spec = BackboneSpec.model_validate({"model": "ViT-B-32", "weights": "s3://models/clip.pt"})
    assert spec.pretrained is None and spec.weights == "s3://models/clip.pt"
    assert BackboneSpec().pretrained is not None  # the default tag stays without weights
