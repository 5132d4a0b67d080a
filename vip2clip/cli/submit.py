"""``vip2clip submit``: registered from its own module; the command lives in :mod:`.jobs`."""

from __future__ import annotations

from vip2clip.cli.jobs import submit

__all__ = ["submit"]
