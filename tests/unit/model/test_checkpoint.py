"""Learner checkpoints: round trips, official imports, refusing unsafe or foreign files."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from vip2clip.errors import CheckpointError
from vip2clip.model import (
    Backbone,
    BackboneSpec,
    DetectorConfig,
    LearnerMetadata,
    ViP2CLIP,
    load_detector,
    load_learner,
    save_learner,
)
from vip2clip.model.checkpoint import update_metadata

PARITY_LEARNER = Path(__file__).resolve().parents[3].parent / "shared/parity/learner_official.pth"


def _model(backbone: Backbone, seed: int = 0) -> ViP2CLIP:
    config = DetectorConfig(backbone=BackboneSpec.tiny(), image_size=64, seed=seed)
    return ViP2CLIP(backbone, config)


def test_round_trip_keeps_weights_and_metadata(tiny_backbone: Backbone, tmp_path: Path) -> None:
    model = _model(tiny_backbone, seed=5)
    meta = LearnerMetadata(taps=(1, 2, 3, 4), image_size=64, image_threshold=0.4)
    save_learner(str(tmp_path / "l.safetensors"), model.learner, meta)
    state, loaded = load_learner(str(tmp_path / "l.safetensors"))
    assert loaded == meta
    for name, tensor in model.learner.state_dict().items():
        assert torch.equal(state[name], tensor)


def test_detector_loads_a_saved_learner_and_thresholds(
    tiny_backbone: Backbone, tmp_path: Path
) -> None:
    uri = str(tmp_path / "l.safetensors")
    trained = _model(tiny_backbone, seed=9)
    save_learner(uri, trained.learner, LearnerMetadata())
    update_metadata(uri, image_threshold=0.6, pixel_threshold=0.5)
    detector = load_detector(
        DetectorConfig(backbone=BackboneSpec.tiny(), learner=uri, image_size=64)
    )
    assert detector.image_threshold == 0.6 and detector.pixel_threshold == 0.5
    got = detector.model.learner.state_dict()
    for name, tensor in trained.learner.state_dict().items():
        assert torch.equal(got[name], tensor)


@pytest.mark.integration
def test_round_trip_on_s3(tiny_backbone: Backbone, s3_server) -> None:  # type: ignore[no-untyped-def]
    uri = f"s3://{s3_server.new_bucket()}/runs/r1/learner.safetensors"
    save_learner(uri, _model(tiny_backbone).learner, LearnerMetadata(image_size=64))
    _, meta = load_learner(uri)
    assert meta.image_size == 64


@pytest.mark.skipif(not PARITY_LEARNER.exists(), reason="../shared/parity is absent")
def test_official_checkpoint_maps_every_tensor() -> None:
    state, meta = load_learner(str(PARITY_LEARNER))
    assert meta.source == "official-import"
    assert (meta.prompts.n_ctx, meta.prompts.n_cls, meta.prompts.hidden_dim) == (7, 3, 384)
    official = torch.load(PARITY_LEARNER, weights_only=True)
    assert len(state) == len(official["prompt_learner"]) + len(official["Zero_try"]) - 1
    assert state["fgp.q_proj.weight"].shape == (768, 768)
    assert torch.equal(state["prompt_learner.ctx_normal"], official["prompt_learner"]["ctx_pos"])


class _Exploit:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch /tmp/vip2clip-pwned-by-checkpoint",))


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = Path("/tmp/vip2clip-pwned-by-checkpoint")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pth"
    torch.save({"prompt_learner": _Exploit(), "Zero_try": {}}, path, pickle_protocol=2)
    with pytest.raises(CheckpointError, match="without unpickling"):
        load_learner(str(path))
    raw = tmp_path / "evil.pkl"
    raw.write_bytes(pickle.dumps(_Exploit()))
    with pytest.raises(CheckpointError):
        load_learner(str(raw))
    assert not marker.exists()


def test_foreign_and_corrupt_files_are_clear_errors(tmp_path: Path) -> None:
    other = tmp_path / "other.pth"
    torch.save({"model": {"w": torch.zeros(1)}}, other)
    with pytest.raises(CheckpointError, match="not an official"):
        load_learner(str(other))
    with pytest.raises(Exception, match="does not exist"):
        load_learner(str(tmp_path / "missing.safetensors"))


def test_learner_from_another_backbone_is_refused(tmp_path: Path) -> None:
    if not PARITY_LEARNER.exists():
        pytest.skip("../shared/parity is absent")
    config = DetectorConfig(
        backbone=BackboneSpec.tiny(), learner=str(PARITY_LEARNER), image_size=64
    )
    with pytest.raises(CheckpointError, match="does not fit"):
        load_detector(config)


def test_metadata_thresholds_and_image_size_are_bounded(
    tiny_backbone: Backbone, tmp_path: Path
) -> None:
    path = tmp_path / "learner.safetensors"
    save_learner(str(path), _model(tiny_backbone).learner, LearnerMetadata(image_size=64))
    with pytest.raises(CheckpointError, match="image_threshold"):
        update_metadata(str(path), image_threshold=7.0)
    with pytest.raises(ValueError, match="less than or equal to 1024"):
        LearnerMetadata(image_size=100_000)
    # a file whose metadata was written out of range by other means: one-line CheckpointError
    raw = path.read_bytes()
    hacked = raw.replace(b'pixel_threshold\\":null', b'pixel_threshold\\":9.00')  # same length
    assert hacked != raw
    path.write_bytes(hacked)
    with pytest.raises(CheckpointError, match=r"invalid metadata: pixel_threshold"):
        load_learner(str(path))
