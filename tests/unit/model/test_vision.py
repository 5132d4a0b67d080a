"""The image tower: eager and through torch.compile (with its fallback when compiling fails)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from vip2clip.model import Backbone, BackboneSpec, DetectorConfig, load_detector
from vip2clip.model.vision import ImageTower, encode_image

SIZE = 64
TAPS = (1, 2)


def test_compiled_tower_matches_eager(tiny_backbone: Backbone) -> None:
    visual = tiny_backbone.clip.visual.eval()
    pixels = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    tower = ImageTower(use_compile=True)
    with torch.inference_mode():
        eager = encode_image(visual, pixels, TAPS)
        compiled = tower(visual, pixels, TAPS)
    assert tower.compiled, "compilation fell back to eager (is a C++ compiler installed?)"
    torch.testing.assert_close(compiled.taps, eager.taps, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(compiled.global_feature, eager.global_feature, rtol=1e-5, atol=1e-5)


def test_tower_without_compile_is_eager(tiny_backbone: Backbone) -> None:
    tower = ImageTower(use_compile=False)
    pixels = torch.randn(1, 3, SIZE, SIZE)
    with torch.inference_mode():
        out = tower(tiny_backbone.clip.visual.eval(), pixels, TAPS)
        expected = encode_image(tiny_backbone.clip.visual, pixels, TAPS)
    assert not tower.compiled
    assert torch.equal(out.taps, expected.taps)


_SCORE_WITH_COMPILE = """
import torch
from vip2clip.model import BackboneSpec, DetectorConfig, load_detector
config = DetectorConfig(backbone=BackboneSpec.tiny(), image_size={size}, device="cpu", compile=True)
detector = load_detector(config)
pixels = torch.randn(2, 3, {size}, {size}, generator=torch.Generator().manual_seed(0))
torch.save(detector.score_pixels(pixels).scores, {out!r})
print("compiled:", detector.model.image_tower.compiled)
"""


def test_failed_compilation_falls_back_to_eager(tmp_path: Path) -> None:
    """A machine without a working C++ compiler: scoring still works, with a warning."""
    out = tmp_path / "scores.pt"
    env = {
        **os.environ,
        "CXX": str(tmp_path / "no-such-c++"),
        "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "inductor"),  # nothing compiled before
    }
    run = subprocess.run(
        [sys.executable, "-c", _SCORE_WITH_COMPILE.format(size=SIZE, out=str(out))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "compiled: False" in run.stdout
    assert "torch.compile of the image tower failed, running eager" in run.stderr
    eager = load_detector(DetectorConfig(backbone=BackboneSpec.tiny(), image_size=SIZE))
    pixels = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(torch.load(out), eager.score_pixels(pixels).scores)
