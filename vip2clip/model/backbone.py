"""Loading the frozen CLIP backbone: one door, three sources, all through open_clip.

* an open_clip model name plus a pretrained tag (downloads only where a network exists);
* a checkpoint file at a local path or object-store URI (OpenAI-format state dicts
  and TorchScript archives of any ViT size, or open_clip checkpoints of a named model);
* a random initialisation of a named config (``vip2clip-tiny`` for tests and demos,
  or the ViT-L-14-336 shape for benchmarks).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import open_clip
import torch
from open_clip.model import build_model_from_openai_state_dict
from pydantic import Field, model_validator
from safetensors.torch import load_file as load_safetensors_file

from vip2clip.config import FrozenConfig
from vip2clip.errors import BackboneUnavailableError
from vip2clip.model.torchscript import is_torchscript_archive, read_torchscript_state_dict
from vip2clip.storage import SafeUri, StorageConfig, local_copy

CONFIG_DIR = Path(__file__).parent / "configs"
TINY_MODEL = "vip2clip-tiny"
DEFAULT_MODEL = "ViT-L-14-336"
DEFAULT_PRETRAINED = "openai"
open_clip.add_model_config(CONFIG_DIR)


class BackboneSpec(FrozenConfig):
    """Which CLIP to load. Exactly one source: ``pretrained`` tag, ``weights`` file, or neither
    (random initialisation of ``model``, seeded)."""

    model: str | None = Field(default=DEFAULT_MODEL, description="open_clip model name")
    pretrained: str | None = Field(default=DEFAULT_PRETRAINED, description="open_clip tag")
    weights: SafeUri | None = Field(default=None, description="local path or s3:// URI of weights")
    quick_gelu: bool = Field(default=True, description="QuickGELU activations (OpenAI CLIP)")
    seed: int = Field(default=0, description="seed of a random initialisation")

    @model_validator(mode="before")
    @classmethod
    def _weights_replace_default_tag(cls, data: Any) -> Any:
        """A ``weights`` file given without a ``pretrained`` key replaces the default tag."""
        if isinstance(data, dict) and data.get("weights") and "pretrained" not in data:
            return {**data, "pretrained": None}
        return data

    @model_validator(mode="after")
    def _one_source(self) -> BackboneSpec:
        if self.weights and self.pretrained:
            raise ValueError("give either `pretrained` (a tag) or `weights` (a file), not both")
        if self.model is None and not self.weights:
            raise ValueError("`model` is required unless `weights` is a checkpoint file")
        return self

    @classmethod
    def tiny(cls, seed: int = 0) -> BackboneSpec:
        """The tiny random test backbone (no download, a few MB)."""
        return cls(model=TINY_MODEL, pretrained=None, seed=seed)

    @classmethod
    def from_file(cls, weights: str) -> BackboneSpec:
        """An OpenAI-format (or open_clip) state dict at a path or URI; architecture inferred."""
        return cls(model=None, pretrained=None, weights=weights)


@dataclass(frozen=True)
class Backbone:
    """A loaded CLIP model and a stable identity string for provenance."""

    clip: open_clip.CLIP
    identity: str

    @property
    def embed_dim(self) -> int:
        """Width of the joint image-text space (``visual.proj`` output)."""
        return int(self.clip.text_projection.shape[1])

    @property
    def text_width(self) -> int:
        return int(self.clip.token_embedding.weight.shape[1])

    @property
    def depth(self) -> int:
        """Number of vision transformer blocks."""
        return len(self.clip.visual.transformer.resblocks)

    @property
    def patch_size(self) -> int:
        return int(self.clip.visual.conv1.kernel_size[0])


def backbone_fingerprint(spec: BackboneSpec, weights_sha256: str | None = None) -> str:
    """Identity of the weights ``spec`` loads: file digest, name + tag, or random seed.

    A file is named by its content only (``weights_sha256``), so copies and renames
    of it, and either spelling of its architecture, give the same fingerprint.
    """
    activation = "quickgelu" if spec.quick_gelu else "gelu"
    if spec.weights:
        if weights_sha256 is None:
            raise ValueError("a weights file is fingerprinted by its SHA-256")
        return f"sha256:{weights_sha256}:{activation}"
    if spec.pretrained:
        return f"{spec.model}:{spec.pretrained}:{activation}"
    return f"{spec.model}:random:{spec.seed}:{activation}"


def load_backbone(spec: BackboneSpec, storage: StorageConfig | None = None) -> Backbone:
    """Build the frozen CLIP described by ``spec`` on the CPU in float32, in eval mode."""
    if spec.weights:
        clip, digest = _from_file(spec, storage)
        identity = backbone_fingerprint(spec, digest)
    elif spec.pretrained:
        clip, identity = _from_tag(spec), backbone_fingerprint(spec)
    else:
        clip, identity = _random(spec), backbone_fingerprint(spec)
    if not isinstance(clip, open_clip.CLIP) or not hasattr(clip.visual, "conv1"):
        raise BackboneUnavailableError(
            f"backbone {identity} is not an open_clip ViT CLIP; ViP²-CLIP needs a ViT image tower"
        )
    clip = clip.float().eval().requires_grad_(False)
    return Backbone(clip=clip, identity=identity)


def _random(spec: BackboneSpec) -> Any:
    assert spec.model is not None
    _require_known_model(spec.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(spec.seed)
        clip = open_clip.create_model(spec.model, pretrained=None, force_quick_gelu=spec.quick_gelu)
    return clip


def _from_tag(spec: BackboneSpec) -> Any:
    assert spec.model is not None and spec.pretrained is not None
    _require_known_model(spec.model)
    if spec.pretrained not in open_clip.list_pretrained_tags_by_model(spec.model):
        raise BackboneUnavailableError(
            f"open_clip has no pretrained tag {spec.pretrained!r} for {spec.model}; known: "
            f"{', '.join(open_clip.list_pretrained_tags_by_model(spec.model)) or 'none'}"
        )
    try:
        clip = open_clip.create_model(
            spec.model, pretrained=spec.pretrained, force_quick_gelu=spec.quick_gelu
        )
    except Exception as exc:  # download failures surface as many exception types
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE") == "1" else ""
        raise BackboneUnavailableError(
            f"could not get {spec.model} weights '{spec.pretrained}'{offline}: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. "
            "On a machine without network, download the weights elsewhere and pass them as "
            "backbone.weights=/path/to/weights.pt (or an s3:// URI) with backbone.pretrained=null"
        ) from None
    return clip


def _from_file(spec: BackboneSpec, storage: StorageConfig | None) -> tuple[Any, str]:
    """The CLIP in the weights file and the file's SHA-256."""
    assert spec.weights is not None
    path = local_copy(spec.weights, storage)
    digest = file_sha256(path)
    state_dict = read_state_dict(path)
    try:
        if spec.model:
            _require_known_model(spec.model)
            clip = open_clip.create_model(
                spec.model, pretrained=None, force_quick_gelu=spec.quick_gelu
            )
            clip.load_state_dict(_weights_only(state_dict), strict=True)
        else:
            clip = _build_from_openai_state_dict(state_dict, spec.quick_gelu)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise BackboneUnavailableError(
            f"{spec.weights} is not a CLIP ViT state dict that open_clip can load: {exc}"
        ) from None
    return clip, digest


def _build_from_openai_state_dict(state_dict: dict[str, torch.Tensor], quick_gelu: bool) -> Any:
    # open_clip infers the architecture from the shapes but rounds weights to fp16 before
    # loading them; loading the same dict again after .float() keeps full fp32 values.
    weights = _weights_only(state_dict)
    clip = build_model_from_openai_state_dict(
        dict(weights), quick_gelu=quick_gelu, cast_dtype=torch.float32
    )
    clip = clip.float()
    clip.load_state_dict(weights, strict=True)
    return clip


# Entries of OpenAI's TorchScript releases that are not weights (open_clip reads them from
# the shapes), and the text tower's causal mask, which open_clip rebuilds (a non-persistent
# buffer) but a TorchScript archive stores like any other buffer.
_NOT_WEIGHTS = ("input_resolution", "context_length", "vocab_size", "attn_mask")


def _weights_only(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state_dict.items() if k not in _NOT_WEIGHTS}


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Read CLIP weights without running code from the file: a TorchScript archive (read as
    data, see :mod:`vip2clip.model.torchscript`), safetensors, or a ``torch.save`` state dict
    read with ``weights_only=True``."""
    if is_torchscript_archive(path):
        return read_torchscript_state_dict(path)
    try:
        if path.suffix == ".safetensors":
            return load_safetensors_file(str(path))
    except Exception as exc:  # corrupt files raise many library-specific types
        raise BackboneUnavailableError(
            f"{path} is not a readable weights file: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from None
    try:
        loaded = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise BackboneUnavailableError(
            f"{path} is not a readable weights file (only tensors are accepted): {exc}"
        ) from None
    if isinstance(loaded, dict) and "state_dict" in loaded:
        loaded = loaded["state_dict"]
    if not isinstance(loaded, dict):
        raise BackboneUnavailableError(f"{path} does not hold a state dict")
    return {_strip_module(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}


def _strip_module(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def _require_known_model(name: str) -> None:
    if name not in open_clip.list_models():
        raise BackboneUnavailableError(
            f"unknown open_clip model {name!r}; see open_clip.list_models() (e.g. {DEFAULT_MODEL}, "
            f"{TINY_MODEL})"
        )


def file_sha256(path: Path, chunk_bytes: int = 8 * 1024**2) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()
