"""Entry point of the ``vip2clip`` command.

Each command lives in its own module of this package and is registered in
:data:`COMMAND_MODULES`; modules import heavy libraries (torch, Ray) inside
their functions so ``vip2clip --help`` stays fast. User errors
(:class:`~vip2clip.errors.Vip2ClipError`) print one line and exit non-zero.
"""

from __future__ import annotations

import importlib
import sys

import click

from vip2clip.errors import Vip2ClipError

# module name -> attribute holding the click command or group
COMMAND_MODULES: dict[str, str] = {
    "demo": "demo",
    "submit": "submit",
    "jobs": "jobs",
    "cluster": "cluster",
    "synth": "synth",
    "evaluate": "evaluate",
    "query": "query",
    "report": "report",
    "score": "score",
    "table": "table",
    "train": "train",
}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="vip2clip")
def cli() -> None:
    """ViP²-CLIP zero-shot anomaly detection: train, score, evaluate and operate on Ray."""


def _register() -> None:
    for module_name, attribute in COMMAND_MODULES.items():
        module = importlib.import_module(f"vip2clip.cli.{module_name}")
        cli.add_command(getattr(module, attribute))


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; return the process exit code."""
    _register()
    try:
        cli.main(args=argv, prog_name="vip2clip", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("vip2clip: aborted", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except Vip2ClipError as exc:
        click.echo(f"vip2clip: error: {_one_line(str(exc))}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("vip2clip: interrupted", err=True)
        return 130
    return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())


if __name__ == "__main__":
    sys.exit(main())
