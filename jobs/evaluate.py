"""Ray job entrypoint: ``python jobs/evaluate.py DATASET [vip2clip evaluate options]``.

Runs ``vip2clip evaluate`` against the cluster the job runs on (``--ray-address auto``
unless the arguments name another address), so scoring uses a Ray Data actor pool.
"""

from __future__ import annotations

import sys

from vip2clip.cli.main import main as cli_main

CLUSTER_ADDRESS = "auto"  # inside a Ray job: the job's own cluster


def main(argv: list[str] | None = None) -> int:
    """Run the evaluation; return the process exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not any(a == "--ray-address" or a.startswith("--ray-address=") for a in args):
        args += ["--ray-address", CLUSTER_ADDRESS]
    return cli_main(["evaluate", *args])


if __name__ == "__main__":
    sys.exit(main())
