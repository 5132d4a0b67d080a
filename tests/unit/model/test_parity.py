"""Numerical parity with the official ViP²-CLIP code on the shared fixture (../shared/parity).

The fixture holds the official outputs and intermediates for a tiny random CLIP whose
weights are regenerated bit-exactly here, an official-format learner checkpoint and
six images. The bar is max |Δ| <= 1e-4 on every compared array.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from vip2clip.data.preprocess import preprocess_image
from vip2clip.model import BackboneSpec, DetectorConfig, load_detector
from vip2clip.model.constants import TEMPERATURE
from vip2clip.model.inference import Detector
from vip2clip.model.vision import resize_positional_embedding

PARITY_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "parity"
TOLERANCE = 1e-4

pytestmark = pytest.mark.skipif(not PARITY_DIR.is_dir(), reason="../shared/parity is absent")


def _fixture_settings() -> dict[str, Any]:
    return json.loads((PARITY_DIR / "expected.json").read_text())


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(PARITY_DIR / "expected.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def tiny_clip_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    spec = importlib.util.spec_from_file_location("clip_weights", PARITY_DIR / "clip_weights.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    state_dict = module.make_openai_state_dict(0)
    weights = _fixture_settings()["clip_weights"]
    assert module.state_dict_digest(state_dict) == weights["state_dict_digest_sha256"]
    path = tmp_path_factory.mktemp("parity") / "tiny_clip.pt"
    torch.save(state_dict, path)
    return path


@pytest.fixture(scope="module")
def detector(tiny_clip_file: Path) -> Detector:
    settings = _fixture_settings()["settings"]
    torch.set_num_threads(2)
    config = DetectorConfig(
        backbone=BackboneSpec.from_file(str(tiny_clip_file)),
        learner=str(PARITY_DIR / "learner_official.pth"),
        image_size=settings["image_size"],
        taps=tuple(settings["features_list"]),
        top_k=settings["topk"],
        sigma=settings["sigma"],
        device="cpu",
    )
    return load_detector(config)


@pytest.fixture(scope="module")
def pixels(expected: dict[str, np.ndarray]) -> torch.Tensor:
    size = _fixture_settings()["settings"]["image_size"]
    images = [Image.open(PARITY_DIR / "inputs" / str(n)) for n in expected["file_names"]]
    return torch.stack([preprocess_image(image, size) for image in images])


def _close(actual: torch.Tensor | np.ndarray, wanted: np.ndarray) -> float:
    got = actual.detach().numpy() if isinstance(actual, torch.Tensor) else actual
    assert got.shape == wanted.shape
    return float(np.abs(got.astype(np.float64) - wanted.astype(np.float64)).max())


def test_preprocessing_is_bit_exact(pixels: torch.Tensor, expected: dict[str, np.ndarray]) -> None:
    assert _close(pixels, expected["pixels"]) == 0.0


def test_final_outputs_match(
    detector: Detector, pixels: torch.Tensor, expected: dict[str, np.ndarray]
) -> None:
    out = detector.score_pixels(pixels)
    assert _close(out.scores, expected["score"]) <= TOLERANCE
    assert _close(out.anomaly_maps, expected["anomaly_map"]) <= TOLERANCE


def test_paths_and_pil_images_score_like_pixels(
    detector: Detector, pixels: torch.Tensor, expected: dict[str, np.ndarray]
) -> None:
    paths = [PARITY_DIR / "inputs" / str(n) for n in expected["file_names"]]
    from_paths = detector.score_images(paths)
    assert _close(from_paths.scores, expected["score"]) <= TOLERANCE
    one = detector.score_images([Image.open(paths[3])])  # RGBA, alone in its batch
    assert _close(one.anomaly_maps[0], expected["anomaly_map"][3]) <= TOLERANCE


def test_intermediates_match(
    detector: Detector, pixels: torch.Tensor, expected: dict[str, np.ndarray]
) -> None:
    model = detector.model
    with torch.inference_mode():
        features = model.encode(pixels)
        assert _close(features.global_feature, expected["image_feature"]) <= TOLERANCE
        assert _close(features.taps.transpose(0, 1), expected["patch_tokens"]) <= TOLERANCE
        grid = detector.image_size // 14
        table = resize_positional_embedding(model.clip.visual.positional_embedding, grid)
        assert _close(table, expected["interp_pos_embed"]) <= TOLERANCE

        prompt_learner = model.learner.prompt_learner
        ctx_cls = prompt_learner.cls_ctx + prompt_learner.class_conditioner(features.global_feature)
        assert _close(ctx_cls, expected["ctx_cls"]) <= TOLERANCE
        from vip2clip.model.prompts import encode_prompts

        text = encode_prompts(model.clip, *prompt_learner(features.global_feature))
        text = torch.stack(text.chunk(2), dim=1)
        assert _close(text, expected["text_embeddings"]) <= TOLERANCE

        for tap in range(features.taps.shape[0]):
            patches = torch.nn.functional.normalize(features.taps[tap], dim=-1)[:, 1:]
            aux = model.learner.fgp(text, patches)
            assert _close(aux, expected["aux_text"][:, tap]) <= TOLERANCE
            cos = patches @ aux.transpose(1, 2)
            assert _close(cos.reshape(-1, 10, 10, 2), expected["sim_cos"][:, tap]) <= TOLERANCE
            prob = (cos / TEMPERATURE).softmax(-1)
            assert _close(prob.reshape(-1, 10, 10, 2), expected["sim_prob"][:, tap]) <= TOLERANCE
            picked = prob[..., 1].topk(50, dim=1).indices.sort(dim=1).values
            assert np.array_equal(picked.numpy(), np.sort(expected["topk_idx"][:, tap], axis=1))

        out = model.head(features, smooth=False)
        layer_maps = (out.prob_maps[:, :, 1] + 1 - out.prob_maps[:, :, 0]) / 2
        assert _close(layer_maps.transpose(0, 1), expected["layer_maps"]) <= TOLERANCE
        assert _close(out.anomaly_maps, expected["anomaly_map_raw"]) <= TOLERANCE
        assert _close(out.image_logits * TEMPERATURE, expected["mean_topk_cos"]) <= TOLERANCE
