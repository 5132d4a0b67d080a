"""Learner checkpoints: safetensors weights plus JSON metadata in the same file.

Nothing is ever unpickled. Official ViP²-CLIP ``.pth`` files (``{"prompt_learner": …,
"Zero_try": …}``) are imported with ``torch.load(weights_only=True)`` and mapped to
our parameter names.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, ValidationError
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import save as save_safetensors_bytes

from vip2clip.config import MAX_IMAGE_SIZE, FrozenConfig, Probability
from vip2clip.errors import CheckpointError
from vip2clip.model.prompts import PromptConfig
from vip2clip.model.torchscript import is_torchscript_archive
from vip2clip.storage import StorageConfig, local_copy, write_bytes

FORMAT = "vip2clip-learner"
FORMAT_VERSION = 1
METADATA_KEY = "vip2clip"
SAFETENSORS_MAGIC_MAX_HEADER = 100 * 1024**2

# Official parameter / buffer names -> ours (prefixes of the two official sub-dicts).
_OFFICIAL_PROMPT_NAMES = {
    "ctx_pos": "ctx_normal",
    "ctx_neg": "ctx_abnormal",
    "cls_ctx": "cls_ctx",
    "token_prefix_pos": "prefix_normal",
    "token_middle_pos": "state_normal",
    "token_suffix_pos": "suffix_normal",
    "token_prefix_neg": "prefix_abnormal",
    "token_middle_neg": "state_abnormal",
    "token_suffix_neg": "suffix_abnormal",
    "tokenized_prompts_pos": "tokens_normal",
    "tokenized_prompts_neg": "tokens_abnormal",
    "cls_prompter.bias": "class_conditioner.input_bias",
}
_OFFICIAL_FGP_NAMES = {
    "q_proj_pre": "q_proj",
    "k_proj_pre_1": "k_proj",
    "v_proj_pre_1": "v_proj",
    "proj_post_t": "out_proj",
}
_OFFICIAL_UNUSED = {"prompt_temp_l1"}  # stored by the official FGP, never used


class LearnerMetadata(FrozenConfig):
    """What a learner was trained with and for; stored as JSON inside the checkpoint."""

    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    prompts: PromptConfig = Field(default_factory=PromptConfig)
    taps: tuple[int, ...] | None = None
    image_size: int | None = Field(default=None, ge=1, le=MAX_IMAGE_SIZE)
    embed_dim: int | None = None
    text_width: int | None = None
    backbone: str | None = Field(default=None, description="backbone identity (name + hash)")
    image_threshold: Probability | None = None
    pixel_threshold: Probability | None = None
    source: str = "vip2clip"
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    training: dict[str, Any] = Field(default_factory=dict)


def save_learner(
    uri: str,
    learner: torch.nn.Module,
    metadata: LearnerMetadata,
    storage: StorageConfig | None = None,
) -> None:
    """Write ``learner``'s parameters and buffers plus ``metadata`` to ``uri``."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in learner.state_dict().items()}
    blob = save_safetensors_bytes(tensors, metadata={METADATA_KEY: metadata.model_dump_json()})
    write_bytes(uri, blob, storage)


def load_learner(
    uri: str, storage: StorageConfig | None = None
) -> tuple[dict[str, torch.Tensor], LearnerMetadata]:
    """Read a learner checkpoint: ours (``.safetensors``) or an official ``.pth`` import."""
    path = local_copy(uri, storage)
    if _looks_like_safetensors(path):
        return _read_safetensors(path, uri)
    if is_torchscript_archive(path):
        raise CheckpointError(
            f"{uri} is a TorchScript archive, not a learner checkpoint: refused unread "
            "(learners are vip2clip .safetensors files or official ViP²-CLIP .pth state dicts)"
        )
    return import_official(path)


def import_official(path: Path) -> tuple[dict[str, torch.Tensor], LearnerMetadata]:
    """Map an official checkpoint to our names; refuses anything but plain tensors."""
    try:
        raw = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path} is neither a vip2clip safetensors learner nor an official ViP²-CLIP "
            f"checkpoint loadable without unpickling code ({type(exc).__name__})"
        ) from None
    if not isinstance(raw, dict) or set(raw) != {"prompt_learner", "Zero_try"}:
        raise CheckpointError(
            f"{path} is not an official ViP²-CLIP checkpoint (expected keys "
            "'prompt_learner' and 'Zero_try')"
        )
    state: dict[str, torch.Tensor] = {}
    for name, tensor in raw["prompt_learner"].items():
        state[f"prompt_learner.{_map_prompt_name(name)}"] = tensor
    for name, tensor in raw["Zero_try"].items():
        if name in _OFFICIAL_UNUSED:
            continue
        module, _, leaf = name.partition(".")
        if module not in _OFFICIAL_FGP_NAMES:
            raise CheckpointError(f"{path}: unknown FGP entry {name!r}")
        # Conv1d(k=1) weights (D, D, 1) are Linear weights (D, D).
        value = tensor.squeeze(-1) if leaf == "weight" else tensor
        state[f"fgp.{_OFFICIAL_FGP_NAMES[module]}.{leaf}"] = value
    prompt = raw["prompt_learner"]
    n_ctx = int(prompt["ctx_pos"].shape[0])
    n_cls = int(prompt["cls_ctx"].shape[0])
    hidden = int(prompt["cls_prompter.fc.0.0.weight"].shape[0])
    metadata = LearnerMetadata(
        prompts=PromptConfig(n_ctx=n_ctx, n_cls=n_cls, hidden_dim=hidden),
        embed_dim=int(prompt["cls_prompter.bias"].shape[1]),
        text_width=int(prompt["ctx_pos"].shape[1]),
        source="official-import",
    )
    return state, metadata


def _map_prompt_name(name: str) -> str:
    if name in _OFFICIAL_PROMPT_NAMES:
        return _OFFICIAL_PROMPT_NAMES[name]
    if name.startswith("cls_prompter.fc."):
        # cls_prompter.fc.<i>.<0|2>.<weight|bias> -> class_conditioner.mlps.<i>.<0|2>.<leaf>
        return "class_conditioner.mlps." + name[len("cls_prompter.fc.") :]
    raise CheckpointError(f"unknown prompt-learner entry {name!r} in official checkpoint")


def _looks_like_safetensors(path: Path) -> bool:
    with path.open("rb") as handle:
        head = handle.read(9)
    if len(head) < 9:
        return False
    header_len = int.from_bytes(head[:8], "little")
    return 0 < header_len < SAFETENSORS_MAGIC_MAX_HEADER and head[8:9] == b"{"


def _read_safetensors(path: Path, uri: str) -> tuple[dict[str, torch.Tensor], LearnerMetadata]:
    data = path.read_bytes()
    try:
        tensors = load_safetensors_bytes(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
    except (SafetensorError, ValueError) as exc:
        raise CheckpointError(f"{uri} is a corrupt safetensors file: {exc}") from None
    raw = (header.get("__metadata__") or {}).get(METADATA_KEY)
    if raw is None:
        raise CheckpointError(f"{uri} has no vip2clip metadata; is it a learner checkpoint?")
    try:
        metadata = LearnerMetadata.model_validate_json(raw)
    except ValidationError as exc:
        raise CheckpointError(f"{uri} has invalid metadata: {_first_error(exc)}") from None
    if metadata.format != FORMAT or metadata.format_version > FORMAT_VERSION:
        raise CheckpointError(
            f"{uri} is format {metadata.format} v{metadata.format_version}; this vip2clip reads "
            f"{FORMAT} up to v{FORMAT_VERSION} — upgrade vip2clip"
        )
    return tensors, metadata


def update_metadata(
    uri: str, storage: StorageConfig | None = None, **changes: Any
) -> LearnerMetadata:
    """Rewrite a checkpoint's metadata (e.g. decision thresholds); weights stay as they are.

    An imported official checkpoint is written back in our safetensors format.
    """
    state, metadata = load_learner(uri, storage)
    try:
        updated = LearnerMetadata.model_validate({**metadata.model_dump(), **changes})
    except ValidationError as exc:
        raise CheckpointError(f"cannot update {uri}: {_first_error(exc)}") from None
    tensors = {name: tensor.contiguous() for name, tensor in state.items()}
    blob = save_safetensors_bytes(tensors, metadata={METADATA_KEY: updated.model_dump_json()})
    write_bytes(uri, blob, storage)
    return updated


def _first_error(exc: ValidationError) -> str:
    """Where and what, without the offending value (it comes from a file)."""
    first = exc.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc']) or '<root>'}: {first['msg']}"
