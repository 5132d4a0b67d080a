"""Weight files never run code: a planted malicious pickle or TorchScript archive is
refused without running (``vip2clip.model.backbone.read_state_dict``, ``load_backbone``,
``load_learner`` and every CLI entry that takes weights or a learner).

The learner side's pickles are covered by tests/unit/model/test_checkpoint.py; this file
covers every backbone format door (legacy pickle, torch.save zip, a zip dressed as a
TorchScript archive, safetensors-named garbage) and real hostile TorchScript archives: a
scripted module whose ``__setstate__`` writes a file, and archives whose ``data.pkl`` calls
``os.system``, ``subprocess.Popen`` or ``builtins.eval``.
"""

from __future__ import annotations

import io
import os
import pickle
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from tests.fixtures.weights import (
    ARCHIVE_ROOT,
    global_payload_archive,
    payloads,
    setstate_payload_archive,
)
from tests.reliability.helpers import write_images
from vip2clip.cli.main import main
from vip2clip.errors import BackboneUnavailableError, CheckpointError, Vip2ClipError
from vip2clip.model import BackboneSpec, load_backbone, load_learner
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


# --------------------------------------------------------------------------- TorchScript
# OpenAI releases CLIP as TorchScript archives, whose loading with torch.jit.load runs code
# from the file. Each archive below is live (see the control test) and must be refused by
# every door that takes weights or a learner, without its target ever being created.

HOSTILE_ARCHIVES = ("setstate-from-file", "os.system", "subprocess.Popen", "builtins.eval")


@dataclass(frozen=True)
class HostileArchive:
    """A TorchScript archive whose loading (torch.jit.load / pickle) creates ``target``."""

    kind: str
    path: Path
    target: Path

    def run_unsafely(self) -> None:
        """Load it the way an unsafe loader would (the control: proves the payload works)."""
        if self.kind == "setstate-from-file":
            torch.jit.load(str(self.path))
            return
        with zipfile.ZipFile(self.path) as archive:
            done = pickle.loads(archive.read(f"{ARCHIVE_ROOT}/data.pkl"))
        if isinstance(done, subprocess.Popen):
            done.wait()


@pytest.fixture(params=HOSTILE_ARCHIVES)
def hostile(request: pytest.FixtureRequest, tmp_path: Path) -> HostileArchive:
    kind: str = request.param
    target = tmp_path / "created-by-the-archive"
    path = tmp_path / f"ViT-L-14-336px-{kind}.pt"
    if kind == "setstate-from-file":
        setstate_payload_archive(path, target)
    else:
        global_payload_archive(path, payloads(target)[kind])
    return HostileArchive(kind, path, target)


def test_each_hostile_archive_is_live(hostile: HostileArchive) -> None:
    hostile.run_unsafely()
    assert hostile.target.exists()


def test_read_state_dict_refuses_a_hostile_archive_without_running_it(
    hostile: HostileArchive,
) -> None:
    with pytest.raises(BackboneUnavailableError) as refused:
        read_state_dict(hostile.path)
    message = str(refused.value)
    assert "\n" not in message and str(hostile.path) in message and "refused" in message
    assert not hostile.target.exists()


def test_a_torchscript_archive_as_learner_is_refused_unread(hostile: HostileArchive) -> None:
    with pytest.raises(CheckpointError, match="TorchScript archive, not a learner"):
        load_learner(str(hostile.path))
    assert not hostile.target.exists()


def _refused_in_one_line(code: int, err: str, hostile: HostileArchive) -> None:
    errors = [line for line in err.splitlines() if line.startswith("vip2clip: error:")]
    assert code != 0 and len(errors) == 1, err[-3000:]
    assert "Traceback" not in err and hostile.path.name in errors[0]
    assert "refused" in errors[0], errors[0]
    assert not hostile.target.exists()


@pytest.mark.parametrize("option", ["--weights", "--learner"])
def test_evaluate_refuses_hostile_weights_and_learners(
    option: str, hostile: HostileArchive, synthetic_dataset: Path, capsys: Any
) -> None:
    backbone = ["--pretrained", "none", "--model", "vip2clip-tiny"] if option == "--learner" else []
    args = ["evaluate", str(synthetic_dataset), "--classes", "wood", "--no-progress", *backbone]
    code = main([*args, option, str(hostile.path)])
    _refused_in_one_line(code, capsys.readouterr().err, hostile)


@pytest.mark.parametrize("option", ["--backbone-weights", "--learner"])
def test_demo_refuses_hostile_weights_and_learners_before_starting_anything(
    option: str, hostile: HostileArchive, tmp_path: Path, capsys: Any
) -> None:
    code = main(["demo", "--workdir", str(tmp_path / "demo"), option, str(hostile.path)])
    captured = capsys.readouterr()
    _refused_in_one_line(code, captured.err, hostile)
    assert "Ray cluster up" not in captured.out


@pytest.mark.integration
@pytest.mark.parametrize("option", ["--weights", "--learner"])
def test_score_refuses_hostile_weights_and_learners(
    option: str, hostile: HostileArchive, ray_cluster: Any, tmp_path: Path, capsys: Any
) -> None:
    source = tmp_path / "in"
    write_images(source, 1)
    backbone = ["--pretrained", "none", "--model", "vip2clip-tiny"] if option == "--learner" else []
    code = main(
        ["score", str(source), "security.results", "--full", "--no-progress",
         "--ray-address", ray_cluster.address, *backbone, option, str(hostile.path)]
    )  # fmt: skip
    _refused_in_one_line(code, capsys.readouterr().err, hostile)


@pytest.mark.integration
def test_train_refuses_hostile_weights(
    hostile: HostileArchive, ray_cluster: Any, synthetic_dataset: Path, tmp_path: Path, capsys: Any
) -> None:
    code = main(
        ["train", "--ray-address", ray_cluster.address,
         "--set", f"dataset.uri={synthetic_dataset}", "--set", f"storage_uri={tmp_path / 'runs'}",
         "--set", f"detector.backbone.weights={hostile.path}"]
    )  # fmt: skip
    _refused_in_one_line(code, capsys.readouterr().err, hostile)
    assert not (tmp_path / "runs").exists()  # refused before training started
