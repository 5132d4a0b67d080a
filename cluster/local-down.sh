#!/usr/bin/env bash
# Stop the local Ray cluster started by cluster/local-up.sh (only its own processes).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
[[ -x "$python" ]] || python="python3"
exec "$python" -m vip2clip.cli.main cluster down "$@"
