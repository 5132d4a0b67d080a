"""Ray job entrypoint: ``python jobs/score.py SOURCE TABLE [vip2clip score options]``.

Runs ``vip2clip score`` against the cluster the job runs on (``--ray-address auto``
unless the arguments name another address). Exit code 0 means the run committed.
"""

from __future__ import annotations

import sys

from vip2clip.cli.main import main as cli_main

CLUSTER_ADDRESS = "auto"  # inside a Ray job: the job's own cluster


def main(argv: list[str] | None = None) -> int:
    """Run the scoring job; return the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--ray-address" or a.startswith("--ray-address=") for a in args):
        args += ["--ray-address", CLUSTER_ADDRESS]
    return cli_main(["score", *args])


if __name__ == "__main__":
    sys.exit(main())
