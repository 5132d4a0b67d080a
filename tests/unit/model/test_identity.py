"""Content-addressed model identity: stable across processes, copies, renames and formats;
different when any weight or output setting differs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vip2clip.model import (
    Backbone,
    BackboneSpec,
    DetectorConfig,
    LearnerMetadata,
    ViP2CLIP,
    detector_identity,
    load_detector,
    load_learner,
    save_learner,
)
from vip2clip.model.checkpoint import _OFFICIAL_FGP_NAMES, _OFFICIAL_PROMPT_NAMES, update_metadata
from vip2clip.model.identity import ID_PREFIX, tensors_fingerprint

PARITY_LEARNER = Path(__file__).resolve().parents[3].parent / "shared/parity/learner_official.pth"
IMAGE_SIZE = 64
SUBPROCESS_TIMEOUT_S = 300
# The official FGP's unused temperature: a 0-d tensor, dropped on import.
OFFICIAL_UNUSED_TEMPERATURE = 0.07


def _official_state(learner: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """Our learner tensors in the official checkpoint layout (the inverse of the import)."""
    prompt_names = {ours: official for official, ours in _OFFICIAL_PROMPT_NAMES.items()}
    fgp_names = {ours: official for official, ours in _OFFICIAL_FGP_NAMES.items()}
    prompt: dict[str, torch.Tensor] = {}
    fgp: dict[str, torch.Tensor] = {"prompt_temp_l1": torch.tensor(OFFICIAL_UNUSED_TEMPERATURE)}
    for name, tensor in learner.items():
        group, _, rest = name.partition(".")
        if group == "prompt_learner" and rest.startswith("class_conditioner.mlps."):
            prompt["cls_prompter.fc." + rest.removeprefix("class_conditioner.mlps.")] = tensor
        elif group == "prompt_learner":
            prompt[prompt_names[rest]] = tensor
        else:
            module, _, leaf = rest.partition(".")
            # Linear weights (D, D) are the official Conv1d(k=1) weights (D, D, 1).
            value = tensor.unsqueeze(-1) if leaf == "weight" else tensor
            fgp[f"{fgp_names[module]}.{leaf}"] = value.clone()
    return {"prompt_learner": prompt, "Zero_try": fgp}


@pytest.fixture(scope="module")
def files(tiny_backbone: Backbone, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A backbone weights file, a learner in our format and the same learner as official .pth."""
    folder = tmp_path_factory.mktemp("identity")
    torch.save(tiny_backbone.clip.state_dict(), folder / "clip.pt")
    model = ViP2CLIP(tiny_backbone, DetectorConfig(backbone=BackboneSpec.tiny(), seed=3))
    save_learner(str(folder / "learner.safetensors"), model.learner, LearnerMetadata())
    state = {k: v.detach().clone() for k, v in model.learner.state_dict().items()}
    torch.save(_official_state(state), folder / "learner_official.pth")
    return {
        "backbone": folder / "clip.pt",
        "learner": folder / "learner.safetensors",
        "official": folder / "learner_official.pth",
    }


def _config(backbone: Path | None, learner: Path | None, **settings: object) -> DetectorConfig:
    spec = (
        BackboneSpec(model="vip2clip-tiny", pretrained=None, weights=str(backbone))
        if backbone
        else BackboneSpec.tiny()
    )
    values = {"image_size": IMAGE_SIZE, **settings}
    return DetectorConfig(backbone=spec, learner=str(learner) if learner else None, **values)


def _identities_in_a_new_process(configs: list[DetectorConfig]) -> list[str]:
    code = (
        "import json, sys\n"
        "from vip2clip.model import DetectorConfig, detector_identity\n"
        "configs = [DetectorConfig.model_validate(c) for c in json.loads(sys.stdin.read())]\n"
        "print(json.dumps([detector_identity(c) for c in configs]))\n"
    )
    payload = json.dumps([c.model_dump(mode="json") for c in configs])
    done = subprocess.run(
        [sys.executable, "-c", code],
        input=payload,
        capture_output=True,
        text=True,
        check=True,
        timeout=SUBPROCESS_TIMEOUT_S,
    )
    identities: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return identities


def test_same_identity_in_another_process_and_after_copies_and_renames(
    files: dict[str, Path], tmp_path: Path
) -> None:
    elsewhere = tmp_path / "another" / "host"
    elsewhere.mkdir(parents=True)
    learner = shutil.copy(files["learner"], elsewhere / "renamed-learner.safetensors")
    backbone = shutil.copy(files["backbone"], elsewhere / "weights-v2.bin")
    official = shutil.copy(files["official"], elsewhere / "best.pth")
    originals = [
        _config(files["backbone"], files["learner"]),
        _config(files["backbone"], files["official"]),
    ]
    copies = [_config(Path(backbone), Path(learner)), _config(Path(backbone), Path(official))]
    here = [detector_identity(c) for c in originals]
    assert all(i.startswith(ID_PREFIX) for i in here)
    assert [detector_identity(c) for c in originals] == here  # every load of the .pth
    parity: list[DetectorConfig] = []
    if PARITY_LEARNER.exists():  # the real official checkpoint, read where it lies
        copied = Path(shutil.copy(PARITY_LEARNER, elsewhere / "p.pth"))
        parity = [_config(None, PARITY_LEARNER), _config(None, copied)]
    there = _identities_in_a_new_process(originals + copies + parity)
    assert there[:4] == here + here
    if parity:
        assert there[4] == there[5] == detector_identity(parity[0])


def test_official_pth_and_its_safetensors_conversion_share_the_identity(
    files: dict[str, Path], tmp_path: Path
) -> None:
    copied = Path(shutil.copy(files["official"], tmp_path / "converted.pth"))
    update_metadata(str(copied), image_threshold=0.5)  # written back as safetensors
    converted = copied.rename(tmp_path / "converted.safetensors")
    assert converted.read_bytes()[8:9] == b"{"  # now a safetensors header
    official_state, _ = load_learner(str(files["official"]))
    converted_state, meta = load_learner(str(converted))
    assert meta.source == "official-import"
    assert tensors_fingerprint(official_state) == tensors_fingerprint(converted_state)
    assert detector_identity(_config(files["backbone"], converted)) == detector_identity(
        _config(files["backbone"], files["official"])
    )


def test_metadata_alone_does_not_change_the_identity(
    files: dict[str, Path], tmp_path: Path
) -> None:
    # The reported bug: an id hashed the learner's created_at and path, so every import
    # or copy rescored the whole archive.
    state, meta = load_learner(str(files["learner"]))
    again = tmp_path / "resaved.safetensors"
    resaved = meta.model_copy(update={"created_at": "2001-01-01T00:00:00+00:00"})
    save_learner(str(again), _StateCarrier(state), resaved)
    assert again.read_bytes() != files["learner"].read_bytes()
    assert detector_identity(_config(files["backbone"], again)) == detector_identity(
        _config(files["backbone"], files["learner"])
    )


class _StateCarrier(torch.nn.Module):
    """A module whose state_dict() is exactly the given tensors (names with dots kept)."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        super().__init__()
        self._state = state

    def state_dict(self, *args: object, **kwargs: object) -> dict[str, torch.Tensor]:  # type: ignore[override]
        return dict(self._state)


@pytest.mark.parametrize("learner_kind", ["learner", "official", None])
def test_detector_identity_equals_the_loaded_detectors(
    files: dict[str, Path], learner_kind: str | None
) -> None:
    learner = files[learner_kind] if learner_kind else None
    for backbone in (files["backbone"], None):
        config = _config(backbone, learner)
        assert detector_identity(config) == load_detector(config).identity


def test_any_learner_tensor_one_ulp_away_changes_the_identity(
    files: dict[str, Path], tmp_path: Path
) -> None:
    state, meta = load_learner(str(files["learner"]))
    base = detector_identity(_config(files["backbone"], files["learner"]))
    for name in ("prompt_learner.ctx_normal", "fgp.out_proj.bias"):
        changed = dict(state)
        tensor = state[name].clone()
        flat = tensor.view(-1)
        flat[0] = torch.nextafter(flat[0], torch.tensor(float("inf")))
        changed[name] = tensor
        path = tmp_path / f"{name}.safetensors"
        save_learner(str(path), _StateCarrier(changed), meta)
        assert detector_identity(_config(files["backbone"], path)) != base, name


def test_a_changed_backbone_weight_changes_the_identity(
    files: dict[str, Path], tmp_path: Path
) -> None:
    state = torch.load(files["backbone"], weights_only=True)
    key = next(k for k in state if k.endswith("weight"))
    state[key] = state[key].clone()
    state[key].view(-1)[0] += 1e-3
    other = tmp_path / "clip.pt"
    torch.save(state, other)
    assert detector_identity(_config(other, files["learner"])) != detector_identity(
        _config(files["backbone"], files["learner"])
    )
    assert detector_identity(_config(None, None)) != detector_identity(
        DetectorConfig(backbone=BackboneSpec.tiny(seed=1), image_size=IMAGE_SIZE)
    )


def test_output_settings_change_the_identity_and_runtime_settings_do_not(
    files: dict[str, Path],
) -> None:
    base = detector_identity(_config(files["backbone"], files["learner"]))
    for setting in (
        {"image_size": IMAGE_SIZE + 14},
        {"taps": (1, 2)},
        {"top_k": 3},
        {"sigma": 2.5},
        {"precision": "bf16"},
    ):
        assert detector_identity(_config(files["backbone"], files["learner"], **setting)) != base
    for setting in ({"device": "cuda:1"}, {"device": "cpu"}, {"compile": True}):
        assert detector_identity(_config(files["backbone"], files["learner"], **setting)) == base


def test_fingerprint_reads_zero_dimensional_and_empty_tensors() -> None:
    scalar = {"t": torch.tensor(OFFICIAL_UNUSED_TEMPERATURE), "e": torch.empty(0, 3)}
    assert tensors_fingerprint(scalar) == tensors_fingerprint(dict(reversed(scalar.items())))
    assert tensors_fingerprint(scalar) != tensors_fingerprint({**scalar, "t": torch.tensor(0.5)})
