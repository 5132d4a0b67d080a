"""Test-only fault hook: exits the process once, then never again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from vip2clip.training.faults import FAULT_EXIT_CODE, FaultInjection, maybe_inject_fault


def _run_hook(fault: FaultInjection, rank: int, epoch: int, step: int) -> int:
    code = (
        "from vip2clip.training.faults import maybe_inject_fault\n"
        f"maybe_inject_fault({fault.model_dump()!r}, {rank}, {epoch}, {step})\n"
    )
    return subprocess.run([sys.executable, "-c", code], check=False).returncode


def test_fires_once_at_its_step(tmp_path: Path) -> None:
    fault = FaultInjection(marker=str(tmp_path / "fired"), epoch=1, step=2)
    # other steps and ranks pass (in this process: a wrong exit would end the test run)
    maybe_inject_fault(fault.model_dump(), 0, 1, 1)
    maybe_inject_fault(fault.model_dump(), 1, 1, 2)
    maybe_inject_fault(fault.model_dump(), 0, 0, 2)
    assert not (tmp_path / "fired").exists()
    assert _run_hook(fault, rank=0, epoch=1, step=2) == FAULT_EXIT_CODE
    assert (tmp_path / "fired").exists()
    assert _run_hook(fault, rank=0, epoch=1, step=2) == 0  # the retried worker carries on


def test_no_fault_configured_is_a_no_op() -> None:
    maybe_inject_fault(None, 0, 0, 0)
