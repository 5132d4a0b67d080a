"""TorchScript archives read as data: every tensor recovered exactly, code never run.

The archives are written here by torch.jit itself (trace or script) and read back by
``vip2clip.model.torchscript``; ``torch.jit.load`` is only used on these test-made files,
as the reference of what the archive holds.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fixtures.weights import traced_clip_archive
from vip2clip.errors import BackboneUnavailableError
from vip2clip.model import Backbone, BackboneSpec, DetectorConfig, load_backbone, load_detector
from vip2clip.model.torchscript import (
    RefusedArchiveError,
    is_torchscript_archive,
    read_torchscript_state_dict,
)

IMAGE_SIZE = 32


@pytest.fixture(scope="module")
def traced(tiny_backbone: Backbone, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return traced_clip_archive(tiny_backbone.clip, tmp_path_factory.mktemp("jit") / "clip.pt")


def test_traced_clip_tensors_come_back_bit_exactly(tiny_backbone: Backbone, traced: Path) -> None:
    read = read_torchscript_state_dict(traced)
    expected = {**tiny_backbone.clip.state_dict(), **dict(tiny_backbone.clip.named_buffers())}
    assert set(read) == set(torch.jit.load(str(traced)).state_dict()) == set(expected)
    assert "visual.conv1.weight" in read and "positional_embedding" in read
    for name, tensor in expected.items():
        assert read[name].dtype == tensor.dtype and torch.equal(read[name], tensor), name


class _Mixed(torch.nn.Module):
    """Buffers of every storage type OpenAI archives use, and views that share storage."""

    def __init__(self) -> None:
        super().__init__()
        base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
        self.weight = torch.nn.Parameter(torch.randn(4, 3))
        self.register_buffer("fp16", torch.randn(5).half())
        self.register_buffer("bf16", torch.randn(2, 2).bfloat16())
        self.register_buffer("int64", torch.tensor([7, -3], dtype=torch.int64))
        self.register_buffer("flags", torch.tensor([True, False]))
        self.register_buffer("base", base)
        self.register_buffer("transposed", base.t())  # non-contiguous view of `base`
        self.register_buffer("tail", base[1:, 2:])  # offset view of `base`
        self.inner = torch.nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x @ self.weight)


def test_storage_types_views_and_nesting_match_torch(tmp_path: Path) -> None:
    path = tmp_path / "mixed.pt"
    torch.jit.script(_Mixed()).save(str(path))
    read = read_torchscript_state_dict(path)
    reference = torch.jit.load(str(path)).state_dict()
    assert set(read) == set(reference) and "inner.weight" in read
    for name, tensor in reference.items():
        assert read[name].dtype == tensor.dtype and torch.equal(read[name], tensor), name


def test_traced_archive_scores_like_its_state_dict(
    tiny_backbone: Backbone, traced: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "clip-state-dict.pt"
    torch.save(tiny_backbone.clip.state_dict(), plain)
    from_archive = load_detector(_detector(traced))
    from_state_dict = load_detector(_detector(plain))
    rgb = np.random.default_rng(0).integers(0, 256, (3, IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8)
    a = from_archive.score_rgb(torch.from_numpy(rgb))
    b = from_state_dict.score_rgb(torch.from_numpy(rgb))
    assert torch.equal(a.scores, b.scores) and torch.equal(a.anomaly_maps, b.anomaly_maps)
    assert load_backbone(BackboneSpec.from_file(str(traced))).depth == tiny_backbone.depth


def _detector(weights: Path) -> DetectorConfig:
    return DetectorConfig(backbone=BackboneSpec.from_file(str(weights)), image_size=IMAGE_SIZE)


def test_a_tensor_reaching_past_its_record_is_refused(traced: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pt"
    with zipfile.ZipFile(traced) as source, zipfile.ZipFile(cut, "w") as target:
        for info in source.infolist():
            data = source.read(info)
            target.writestr(info, data[: len(data) // 2] if info.filename.endswith("/0") else data)
    assert is_torchscript_archive(cut)
    with pytest.raises(RefusedArchiveError, match=r"cut\.pt.*data/0"):
        read_torchscript_state_dict(cut)


def test_a_zip_without_a_module_tree_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "odd.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a/code/__torch__.py", "")
    with pytest.raises(BackboneUnavailableError, match=r"odd\.pt is not a TorchScript archive"):
        read_torchscript_state_dict(path)
