"""Backbone weight files are never unpickled: a planted malicious pickle is refused
without running (``vip2clip.model.backbone.read_state_dict`` and ``load_backbone``).

The learner side (``load_learner``) is covered by tests/unit/model/test_checkpoint.py;
this file covers every backbone format door: legacy pickle, torch.save zip, a zip
dressed as a TorchScript archive, and safetensors-named garbage.
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from vip2clip.errors import BackboneUnavailableError, Vip2ClipError
from vip2clip.model import BackboneSpec, load_backbone
from vip2clip.model.backbone import read_state_dict


class _Exploit:
    """Unpickling this runs ``touch <marker>``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    return tmp_path / "pwned"


def _torch_save_zip(path: Path, marker: Path) -> Path:
    torch.save({"visual.proj": torch.zeros(2), "evil": _Exploit(marker)}, path)
    return path


def _legacy_pickle(path: Path, marker: Path) -> Path:
    torch.save(
        {"state_dict": {"evil": _Exploit(marker)}}, path, _use_new_zipfile_serialization=False
    )
    return path


def _raw_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"w": _Exploit(marker)}))
    return path


def _fake_torchscript(path: Path, marker: Path) -> Path:
    """A zip with a ``code/`` folder (what marks TorchScript) and a malicious data.pkl."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("model/code/__torch__.py", "")
        archive.writestr("model/data.pkl", pickle.dumps(_Exploit(marker), protocol=2))
        archive.writestr("model/constants.pkl", pickle.dumps((), protocol=2))
        archive.writestr("model/version", "3\n")
    return path


def _garbage_safetensors(path: Path, marker: Path) -> Path:
    buffer = io.BytesIO(pickle.dumps(_Exploit(marker)))
    path.write_bytes(b"\xff\x00\x00\x00\x00\x00\x00\x00" + buffer.getvalue())
    return path


PLANTS = {
    "torch-save-zip.pt": _torch_save_zip,
    "legacy-pickle.pt": _legacy_pickle,
    "raw-pickle.bin": _raw_pickle,
    "fake-torchscript.pt": _fake_torchscript,
    "garbage.safetensors": _garbage_safetensors,
}


@pytest.mark.parametrize("name", sorted(PLANTS))
def test_read_state_dict_refuses_a_malicious_file_without_running_it(
    name: str, tmp_path: Path, marker: Path
) -> None:
    path = PLANTS[name](tmp_path / name, marker)
    with pytest.raises(Exception) as refused:
        read_state_dict(path)
    assert not marker.exists(), "the pickle payload ran"
    # A user error, so the CLI prints one line instead of a traceback.
    assert isinstance(refused.value, BackboneUnavailableError), repr(refused.value)


def test_load_backbone_from_a_malicious_file_is_a_user_error(tmp_path: Path, marker: Path) -> None:
    path = _torch_save_zip(tmp_path / "clip.pt", marker)
    with pytest.raises(Vip2ClipError):
        load_backbone(BackboneSpec.from_file(str(path)))
    assert not marker.exists()


def test_malicious_backbone_on_s3_is_refused(tmp_path: Path, marker: Path, s3_server: Any) -> None:
    bucket = s3_server.new_bucket("evil-weights")
    data = _torch_save_zip(tmp_path / "clip.pt", marker).read_bytes()
    s3_server.client().put_object(Bucket=bucket, Key="clip.pt", Body=data)
    with pytest.raises(Vip2ClipError):
        load_backbone(BackboneSpec.from_file(f"s3://{bucket}/clip.pt"))
    assert not marker.exists()
