#!/usr/bin/env bash
# Start a local multi-node Ray cluster (head + workers, token auth, 127.0.0.1 only).
# Usage: cluster/local-up.sh [--workers N] [--object-store-mib M] [...]  (see `vip2clip cluster up -h`)
# Then: source "${VIP2CLIP_CLUSTER_DIR:-$HOME/.vip2clip/cluster}/env.sh"
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$here/.venv/bin/python}"
[[ -x "$python" ]] || python="python3"
exec "$python" -m vip2clip.cli.main cluster up "$@"
