"""Shared detector options of ``vip2clip score`` / ``evaluate`` (``vip2clip.cli.options``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from vip2clip.cli.evaluate import evaluate
from vip2clip.cli.options import (
    DETECTOR_OPTION_KEYS,
    apply_detector_options,
    apply_options,
    detector_options,
    set_dotted,
)
from vip2clip.cli.score import score

DETECTOR_FLAGS = ("--model", "--pretrained", "--weights", "--learner", "--image-size", "--device")


def test_set_dotted_creates_and_keeps_levels() -> None:
    data: dict[str, Any] = {"detector": {"backbone": {"model": "a"}, "top_k": 5}}
    set_dotted(data, "detector.backbone.weights", "w.pt")
    set_dotted(data, "batch_size", 8)
    set_dotted(data, "storage.region", "eu")
    assert data == {
        "detector": {"backbone": {"model": "a", "weights": "w.pt"}, "top_k": 5},
        "batch_size": 8,
        "storage": {"region": "eu"},
    }


def test_detector_options_fill_the_nested_dict() -> None:
    data: dict[str, Any] = {"detector": {"top_k": 5}, "batch_size": 4}
    options = {
        "model": "vip2clip-tiny",
        "pretrained": "openai",
        "weights": "s3://b/clip.pt",
        "learner": "/runs/learner.pt",
        "image_size": 224,
        "device": "cpu",
        "batch_size": 99,  # not a detector option: ignored here
    }
    apply_detector_options(data, options)
    assert data == {
        "detector": {
            "top_k": 5,
            "backbone": {
                "model": "vip2clip-tiny",
                "pretrained": "openai",
                "weights": "s3://b/clip.pt",
            },
            "learner": "/runs/learner.pt",
            "image_size": 224,
            "device": "cpu",
        },
        "batch_size": 4,
    }


@pytest.mark.parametrize("spelling", ["none", "None", "NONE"])
def test_pretrained_none_is_null(spelling: str) -> None:
    data: dict[str, Any] = {"detector": {"backbone": {"pretrained": "openai"}}}
    apply_detector_options(data, {"pretrained": spelling})
    assert data == {"detector": {"backbone": {"pretrained": None}}}


def test_unset_options_leave_the_dict_untouched() -> None:
    data: dict[str, Any] = {"detector": {"backbone": {"pretrained": "openai"}, "image_size": 518}}
    unset = dict.fromkeys(DETECTOR_OPTION_KEYS)
    apply_detector_options(data, unset)
    apply_detector_options(data, {})
    assert data == {"detector": {"backbone": {"pretrained": "openai"}, "image_size": 518}}
    empty: dict[str, Any] = {}
    apply_detector_options(empty, unset)
    assert empty == {}


def test_weights_replace_the_pretrained_tag() -> None:
    data: dict[str, Any] = {"detector": {"backbone": {"pretrained": "openai"}}}
    apply_detector_options(data, {"weights": "s3://b/clip.pt"})
    assert data == {"detector": {"backbone": {"pretrained": None, "weights": "s3://b/clip.pt"}}}
    both: dict[str, Any] = {}
    apply_detector_options(both, {"weights": "w.pt", "pretrained": "openai"})
    assert both == {"detector": {"backbone": {"pretrained": "openai", "weights": "w.pt"}}}


def test_apply_options_skips_none_but_keeps_falsy_values() -> None:
    data: dict[str, Any] = {}
    apply_options(data, {"a": 0, "b": None, "c": ""}, {"a": "x.a", "b": "x.b", "c": "c"})
    assert data == {"x": {"a": 0}, "c": ""}


def test_decorator_passes_values_in_option_order() -> None:
    seen: dict[str, Any] = {}

    @click.command()
    @click.option("--first")
    @detector_options
    @click.option("--last")
    def command(**options: Any) -> None:
        seen.update(options)

    names = [param.name for param in command.params]
    assert names == ["first", *DETECTOR_OPTION_KEYS, "last"]
    result = CliRunner().invoke(command, ["--image-size", "112", "--pretrained", "none"])
    assert result.exit_code == 0, result.output
    assert seen["image_size"] == 112 and seen["pretrained"] == "none" and seen["model"] is None
    bad = CliRunner().invoke(command, ["--image-size", "big"])
    assert bad.exit_code == 2 and "'big' is not a valid integer" in bad.output


@pytest.mark.parametrize("command", [score, evaluate], ids=["score", "evaluate"])
def test_help_lists_the_detector_options(command: click.Command) -> None:
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0, result.output
    for flag in DETECTOR_FLAGS:
        assert flag in result.output
    assert "'none' = random init" in " ".join(result.output.split())  # help text is wrapped


class _CapturedError(Exception):
    """Stops a command right after its config is built."""


def _capture_configs(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[Any]:
    """Replace ``module.name`` (the command's run function) by one that records its config
    and stops; returns the list the configs go to."""
    seen: list[Any] = []

    def capture(config: Any) -> None:
        seen.append(config)
        raise _CapturedError

    monkeypatch.setattr(module, name, capture)
    return seen


def test_evaluate_builds_the_detector_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import vip2clip.eval.evaluate as evaluation

    seen = _capture_configs(monkeypatch, evaluation, "evaluate")
    yaml_file = tmp_path / "evaluate.yaml"
    yaml_file.write_text("detector:\n  image_size: 224\n  backbone: {pretrained: openai}\n")
    args = [str(tmp_path), "--config", str(yaml_file), "--model", "vip2clip-tiny"]
    result = CliRunner().invoke(evaluate, [*args, "--pretrained", "None", "--device", "cpu"])
    assert isinstance(result.exception, _CapturedError), result.output
    (config,) = seen
    detector = config.detector
    assert (detector.backbone.model, detector.backbone.pretrained) == ("vip2clip-tiny", None)
    assert (detector.image_size, detector.device) == (224, "cpu")
    assert config.dataset.uri == str(tmp_path)


def test_score_without_pretrained_keeps_the_yaml_tag(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import vip2clip.scoring as scoring

    seen = _capture_configs(monkeypatch, scoring, "run_scoring")
    yaml_file = tmp_path / "score.yaml"
    yaml_file.write_text("detector:\n  backbone: {model: ViT-B-16, pretrained: laion2b}\n")
    runner = CliRunner()
    result = runner.invoke(score, ["in", "ns.out", "--config", str(yaml_file), "--device", "cpu"])
    assert isinstance(result.exception, _CapturedError), result.output
    result = runner.invoke(score, ["in", "ns.out"])
    assert isinstance(result.exception, _CapturedError), result.output
    from_yaml, default = (config.detector for config in seen)
    assert (from_yaml.backbone.model, from_yaml.backbone.pretrained) == ("ViT-B-16", "laion2b")
    assert from_yaml.device == "cpu"
    assert default.backbone == type(default.backbone)()  # the documented default backbone
