"""Command-line options shared by the commands that build a detector (``score``, ``evaluate``).

Commands collect their options into a nested config dict (YAML file first, then options,
then ``--set`` overrides via :func:`~vip2clip.config.load_config`); the helpers here do the
option -> dotted key part once for every command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click

FC = TypeVar("FC", bound=Callable[..., Any])

NO_PRETRAINED = "none"  # --pretrained none: randomly initialised backbone (tests, demos)
PRETRAINED_OPTION = "pretrained"
WEIGHTS_OPTION = "weights"

# CLI option -> dotted key of the detector config (DetectorConfig under ``detector.``)
DETECTOR_OPTION_KEYS: dict[str, str] = {
    "model": "detector.backbone.model",
    PRETRAINED_OPTION: "detector.backbone.pretrained",
    WEIGHTS_OPTION: "detector.backbone.weights",
    "learner": "detector.learner",
    "image_size": "detector.image_size",
    "device": "detector.device",
}

_DETECTOR_OPTIONS: tuple[Callable[[FC], FC], ...] = (
    click.option("--model", help="open_clip model name of the backbone (e.g. ViT-L-14-336)"),
    click.option(
        "--pretrained", help="open_clip pretrained tag (e.g. openai); 'none' = random init"
    ),
    click.option("--weights", help="backbone weights file (path or URI)"),
    click.option("--learner", help="learner checkpoint (path or URI)"),
    click.option("--image-size", type=int),
    click.option("--device", help="auto | cpu | cuda | cuda:N"),
)


def detector_options(command: FC) -> FC:
    """Add ``--model/--pretrained/--weights/--learner/--image-size/--device`` to a command.

    The options keep this order in ``--help`` at the place where the decorator is
    applied; their values reach the command as keyword arguments named as in
    :data:`DETECTOR_OPTION_KEYS` (``None`` when not given).
    """
    # click lists options in reverse order of application: apply the last one first
    for option in reversed(_DETECTOR_OPTIONS):
        command = option(command)
    return command


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``data[a][b][c] = value`` for ``dotted == "a.b.c"``, creating missing levels."""
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def apply_options(
    data: dict[str, Any], options: Mapping[str, Any], keys: Mapping[str, str]
) -> None:
    """Copy every given option (not ``None``) of ``options`` to its dotted key in ``data``."""
    for name, key in keys.items():
        value = options.get(name)
        if value is not None:
            set_dotted(data, key, value)


def apply_detector_options(data: dict[str, Any], options: Mapping[str, Any]) -> None:
    """Copy the given :func:`detector_options` values into ``data`` (a nested config dict).

    ``--pretrained none`` (any case) becomes ``detector.backbone.pretrained: null``, a
    randomly initialised backbone. ``--weights`` without ``--pretrained`` also sets it to
    null: the weights file replaces the (default) pretrained tag. Options not given leave
    ``data`` untouched.
    """
    apply_options(data, options, DETECTOR_OPTION_KEYS)
    if _clears_pretrained(options):
        set_dotted(data, DETECTOR_OPTION_KEYS[PRETRAINED_OPTION], None)


def _clears_pretrained(options: Mapping[str, Any]) -> bool:
    pretrained = options.get(PRETRAINED_OPTION)
    if pretrained is None:
        return options.get(WEIGHTS_OPTION) is not None
    return str(pretrained).lower() == NO_PRETRAINED
