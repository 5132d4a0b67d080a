"""The README's main command, end to end: `vip2clip demo` on a small archive."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ARCHIVE = 16
BROKEN = 3  # vip2clip.demo.runner.BROKEN_OBJECTS


def test_demo_runs_offline_end_to_end(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "AWS_"))}
    env["HF_HUB_OFFLINE"] = "1"
    cli = Path(sys.executable).parent / "vip2clip"
    proc = subprocess.run(
        [
            str(cli),
            "demo",
            "--workdir",
            str(workdir),
            "--archive-count",
            str(ARCHIVE),
            "--epochs",
            "1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    done = re.search(r"run (\S+): (\d+) ok, (\d+) errors", proc.stdout)
    assert done, proc.stdout[-2000:]
    assert (int(done.group(2)), int(done.group(3))) == (ARCHIVE, BROKEN)
    assert "zero-shot on the unseen 'pills' domain" in proc.stdout
    assert "SQL — top 5 anomalies" in proc.stdout
    report = (workdir / "report.html").read_text(encoding="utf-8")
    assert "<script" not in report.lower()
    # The table outlives the demo: its .pyiceberg.yaml names the catalog for any pyiceberg user.
    query = subprocess.run(
        [str(cli), "query", "SELECT status, count(*) AS n FROM results GROUP BY ALL",
         "--catalog", "demo", "--table", "demo.results"],
        env={**env, "PYICEBERG_HOME": str(workdir)}, capture_output=True, text=True,
        timeout=120, check=False,
    )  # fmt: skip
    assert query.returncode == 0, query.stderr
    counts = dict(re.findall(r"(ok|error)\s+(\d+)", query.stdout))
    assert counts == {"ok": str(ARCHIVE), "error": str(BROKEN)}, query.stdout
