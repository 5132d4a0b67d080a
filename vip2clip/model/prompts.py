"""ICA: image-conditioned learnable prompts and the frozen text encoder that reads them."""

from __future__ import annotations

import open_clip
import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vip2clip.config import FrozenConfig
from vip2clip.model.attention import last_block_output
from vip2clip.model.constants import DEFAULT_N_CLS, DEFAULT_N_CTX

PLACEHOLDER = "X"  # the official sentences fill learnable slots with "X"


class PromptConfig(FrozenConfig):
    """Shape of the learnable prompts "[ctx] <state> [cls]"."""

    n_ctx: int = Field(default=DEFAULT_N_CTX, ge=1, description="learnable context tokens")
    n_cls: int = Field(default=DEFAULT_N_CLS, ge=1, description="image-conditioned class tokens")
    normal_word: str = "good"
    abnormal_word: str = "damaged"
    hidden_dim: int | None = Field(default=None, description="class MLP width; None = embed/2")
    faithful_state_words: bool = Field(
        default=True,
        description=(
            "official behaviour: both prompts embed the abnormal sentence, so the normal word "
            "never reaches the model (official checkpoints were trained so); False embeds each "
            "prompt's own word"
        ),
    )


def prompt_sentence(config: PromptConfig, state_word: str) -> str:
    """``"X ... X <state> X X X"`` with ``n_ctx`` and ``n_cls`` placeholders, no period."""
    return " ".join([PLACEHOLDER] * config.n_ctx + [state_word] + [PLACEHOLDER] * config.n_cls)


class ClassConditioner(nn.Module):
    """Global image feature ``(B, E)`` -> ``n_cls`` class-token offsets ``(B, n_cls, W)``.

    A learned bias is added to the input, then one ``Linear -> ReLU -> Linear`` per token.
    """

    def __init__(self, embed_dim: int, text_width: int, n_tokens: int, hidden_dim: int) -> None:
        super().__init__()
        self.input_bias = nn.Parameter(torch.zeros(1, embed_dim))
        self.mlps = nn.ModuleList(
            nn.Sequential(
                nn.Linear(embed_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, text_width)
            )
            for _ in range(n_tokens)
        )

    def forward(self, image_feature: torch.Tensor) -> torch.Tensor:
        x = image_feature + self.input_bias
        return torch.stack([mlp(x) for mlp in self.mlps], dim=1)


class PromptLearner(nn.Module):
    """Learnable normal/abnormal prompts conditioned on each image (ICA).

    Fixed token embeddings of the sentence around the learnable slots are buffers,
    saved with the learner (the official checkpoints carry them too).
    """

    def __init__(self, clip: open_clip.CLIP, config: PromptConfig) -> None:
        super().__init__()
        width = clip.token_embedding.weight.shape[1]
        embed_dim = clip.text_projection.shape[1]
        self.config = config
        self.ctx_normal = nn.Parameter(torch.empty(config.n_ctx, width).normal_(std=0.02))
        self.ctx_abnormal = nn.Parameter(torch.empty(config.n_ctx, width).normal_(std=0.02))
        self.cls_ctx = nn.Parameter(torch.empty(config.n_cls, width).normal_(std=0.02))
        hidden = config.hidden_dim or embed_dim // 2
        self.class_conditioner = ClassConditioner(embed_dim, width, config.n_cls, hidden)
        for kind, word in (("normal", config.normal_word), ("abnormal", config.abnormal_word)):
            tokens = open_clip.tokenize([prompt_sentence(config, word)]).to(torch.int32)
            self.register_buffer(f"tokens_{kind}", tokens)
        embed_kind = {"normal": "abnormal" if config.faithful_state_words else "normal"}
        embed_kind["abnormal"] = "abnormal"
        with torch.no_grad():
            for kind, source in embed_kind.items():
                tokens = self._buffer(f"tokens_{source}").long()
                embedded = clip.token_embedding(tokens).float()
                state_len = self._state_length(tokens)
                start = 1 + config.n_ctx
                self.register_buffer(f"prefix_{kind}", embedded[:, :1].clone())
                self.register_buffer(
                    f"state_{kind}", embedded[:, start : start + state_len].clone()
                )
                self.register_buffer(
                    f"suffix_{kind}", embedded[:, start + state_len + config.n_cls :].clone()
                )

    def _buffer(self, name: str) -> torch.Tensor:
        buffer: torch.Tensor = self.get_buffer(name)
        return buffer

    def _state_length(self, tokens: torch.Tensor) -> int:
        eot = int(tokens.argmax(dim=-1).item())
        return eot - 1 - self.config.n_ctx - self.config.n_cls

    def forward(self, image_feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(B, E)`` normalised image features -> prompt embeddings ``(2B, L, W)`` (normal rows
        first, then abnormal) and their token ids ``(2B, L)`` for EOT pooling."""
        batch = image_feature.shape[0]
        cls_tokens = self.cls_ctx + self.class_conditioner(image_feature)  # (B, n_cls, W)
        prompts = []
        for kind, ctx in (("normal", self.ctx_normal), ("abnormal", self.ctx_abnormal)):
            parts = [
                self._buffer(f"prefix_{kind}").expand(batch, -1, -1),
                ctx.unsqueeze(0).expand(batch, -1, -1),
                self._buffer(f"state_{kind}").expand(batch, -1, -1),
                cls_tokens,
                self._buffer(f"suffix_{kind}").expand(batch, -1, -1),
            ]
            prompts.append(torch.cat(parts, dim=1))
        tokens = torch.cat(
            [
                self._buffer("tokens_normal").expand(batch, -1),
                self._buffer("tokens_abnormal").expand(batch, -1),
            ]
        )
        return torch.cat(prompts), tokens


def encode_prompts(
    clip: open_clip.CLIP, prompts: torch.Tensor, tokens: torch.Tensor
) -> torch.Tensor:
    """Frozen text tower over prompt embeddings ``(P, L, W)`` -> normalised ``(P, E)``.

    Causal mask, ``ln_final``, pooling at the EOT position (argmax of the token ids),
    ``@ text_projection``.
    """
    x = prompts + clip.positional_embedding.to(prompts.dtype)
    transformer = clip.transformer
    x = last_block_output(
        transformer.resblocks, x, causal=True, batch_first=transformer.batch_first
    )
    x = clip.ln_final(x)
    eot = tokens.argmax(dim=-1)
    pooled = x[torch.arange(x.shape[0], device=x.device), eot]
    return F.normalize(pooled @ clip.text_projection, dim=-1)
