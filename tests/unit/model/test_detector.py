"""The detector on a tiny random backbone: shapes, batching, generality, gradients."""

from __future__ import annotations

import pytest
import torch

from vip2clip.model import Backbone, DetectorConfig, PromptConfig, ViP2CLIP
from vip2clip.model.detector import default_taps
from vip2clip.model.prompts import PromptLearner, prompt_sentence


def _model(backbone: Backbone, **settings: object) -> ViP2CLIP:
    config = DetectorConfig(backbone={"model": "vip2clip-tiny", "pretrained": None}, **settings)
    return ViP2CLIP(backbone, config).eval()


def test_default_taps_are_depth_quarters() -> None:
    assert default_taps(24) == (6, 12, 18, 24)
    assert default_taps(4) == (1, 2, 3, 4)
    assert default_taps(12) == (3, 6, 9, 12)


@pytest.mark.parametrize(
    ("image_size", "taps", "top_k", "sigma", "n_ctx", "n_cls"),
    [
        (64, (1, 2, 3, 4), 50, 8.0, 7, 3),
        (100, (1, 3), 10, 4.0, 7, 3),
        (96, (2, 4), 5, 2.0, 3, 1),
        (112, (4,), 1000, 0.0, 9, 2),
    ],
)
def test_outputs_have_documented_shapes_and_ranges(
    tiny_backbone: Backbone,
    image_size: int,
    taps: tuple[int, ...],
    top_k: int,
    sigma: float,
    n_ctx: int,
    n_cls: int,
) -> None:
    model = _model(
        tiny_backbone,
        image_size=image_size,
        taps=taps,
        top_k=top_k,
        sigma=sigma,
        prompts=PromptConfig(n_ctx=n_ctx, n_cls=n_cls),
    )
    pixels = torch.randn(3, 3, image_size, image_size)
    with torch.inference_mode():
        out = model(pixels)
    assert out.scores.shape == (3,)
    assert out.anomaly_maps.shape == (3, image_size, image_size)
    assert out.prob_maps.shape == (len(taps), 3, 2, image_size, image_size)
    assert out.image_logits.shape == (3, 2)
    assert ((out.scores > 0) & (out.scores < 1)).all()
    assert ((out.anomaly_maps >= 0) & (out.anomaly_maps <= 1)).all()


def test_batch_results_equal_single_image_results(tiny_backbone: Backbone) -> None:
    model = _model(tiny_backbone, image_size=64)
    pixels = torch.randn(4, 3, 64, 64)
    with torch.inference_mode():
        batched = model(pixels)
        singles = [model(pixels[i : i + 1]) for i in range(4)]
    assert torch.allclose(batched.scores, torch.cat([s.scores for s in singles]), atol=1e-5)
    maps = torch.cat([s.anomaly_maps for s in singles])
    assert torch.allclose(batched.anomaly_maps, maps, atol=1e-5)


def test_only_the_learner_gets_gradients(tiny_backbone: Backbone) -> None:
    model = _model(tiny_backbone, image_size=64).train()
    assert not model.clip.training
    out = model(torch.randn(2, 3, 64, 64))
    (out.prob_maps.sum() + out.image_logits.sum()).backward()
    learner_grads = [p.grad for p in model.learner.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in learner_grads)
    assert all(p.grad is None for p in model.clip.parameters())


def test_learner_initialisation_is_seeded(tiny_backbone: Backbone) -> None:
    a, b = _model(tiny_backbone, seed=3), _model(tiny_backbone, seed=3)
    c = _model(tiny_backbone, seed=4)
    assert torch.equal(a.learner.prompt_learner.ctx_normal, b.learner.prompt_learner.ctx_normal)
    assert not torch.equal(a.learner.prompt_learner.ctx_normal, c.learner.prompt_learner.ctx_normal)


def test_invalid_taps_and_sizes_are_refused(tiny_backbone: Backbone) -> None:
    with pytest.raises(ValueError, match="taps"):
        _model(tiny_backbone, taps=(5,))
    with pytest.raises(ValueError, match="below the patch size"):
        _model(tiny_backbone, image_size=15)


def test_faithful_prompts_embed_the_abnormal_sentence_for_both(tiny_backbone: Backbone) -> None:
    faithful = PromptLearner(tiny_backbone.clip, PromptConfig())
    assert torch.equal(faithful.state_normal, faithful.state_abnormal)
    corrected = PromptLearner(tiny_backbone.clip, PromptConfig(faithful_state_words=False))
    assert not torch.equal(corrected.state_normal, corrected.state_abnormal)
    # The token ids keep each prompt's own word (used only to find the EOT position).
    assert not torch.equal(faithful.tokens_normal, faithful.tokens_abnormal)
    assert prompt_sentence(PromptConfig(n_ctx=2, n_cls=1), "good") == "X X good X"


def test_multi_token_state_words_keep_the_slot_layout(tiny_backbone: Backbone) -> None:
    config = PromptConfig(normal_word="flawless", abnormal_word="badly scratched", n_ctx=4)
    learner = PromptLearner(tiny_backbone.clip, config)
    prompts, tokens = learner(torch.nn.functional.normalize(torch.randn(2, 64), dim=-1))
    assert prompts.shape == (4, 77, 64)
    assert tokens.shape == (4, 77)
