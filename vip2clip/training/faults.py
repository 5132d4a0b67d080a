"""Test-only fault injection: kill a training worker process once, mid-epoch.

Used by the failure-recovery test to prove that a run whose worker dies resumes from its
last checkpoint. The marker file (on a filesystem the worker sees) makes the fault happen
once: the retried worker finds it and carries on. Never set by the CLI or the job entrypoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field

from vip2clip.config import FrozenConfig

FAULT_EXIT_CODE = 75


class FaultInjection(FrozenConfig):
    """Kill worker ``rank`` with ``os._exit`` before step ``step`` of ``epoch`` (0-based),
    unless ``marker`` exists; the marker is written first."""

    marker: str = Field(description="local path written when the fault fires")
    epoch: int = Field(ge=0)
    step: int = Field(default=0, ge=0)
    rank: int = Field(default=0, ge=0)


def maybe_inject_fault(fault: dict[str, Any] | None, rank: int, epoch: int, step: int) -> None:
    """Exit the process abruptly if ``fault`` (a dumped :class:`FaultInjection`) matches."""
    if fault is None:
        return
    spec = FaultInjection.model_validate(fault)
    if (spec.rank, spec.epoch, spec.step) != (rank, epoch, step):
        return
    marker = Path(spec.marker)
    if marker.exists():
        return
    marker.write_text(f"worker pid {os.getpid()} killed at epoch {epoch} step {step}\n")
    os._exit(FAULT_EXIT_CODE)
