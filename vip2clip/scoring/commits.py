"""Data files out of Ray tasks, snapshots into the results table: the run's write side.

Writer tasks (:func:`write_results`) turn result rows into Parquet data files
and hand back one small row per file: the file's Iceberg metadata plus its
outcome counts. The driver feeds those rows to a :class:`ProgressiveCommitter`,
which commits a snapshot every ``commit_every`` rows or ``commit_interval_s``
seconds, whichever comes first, and a last one marked complete. A driver lost
mid-run loses only the files written since its last commit (orphans that
``vip2clip table maintain`` removes); the same command resumes after them.
"""

from __future__ import annotations

import json
import pickle
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa
from pyiceberg.manifest import DataFile

from vip2clip.results import STATUS_ERROR, STATUS_OK, ResultsTable, TableRef, write_data_files
from vip2clip.results import table as results_table

WRITE_SCHEMA = pa.schema(
    [
        # DataFile metadata, serialised by our own writer tasks (never read from users' files).
        pa.field("data_file", pa.binary(), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("ok", pa.int64(), nullable=False),
        pa.field("error_reasons", pa.string(), nullable=False),  # JSON {reason: count}
    ]
)


def write_results(batch: pa.Table, ref: TableRef) -> pa.Table:
    """Result rows of one run -> data files in the table's storage -> one row per file.

    The batch's outcome counts ride on its first file's row (the others carry zeros),
    so they are committed together with the rows they count.
    """
    files = write_data_files(batch, ref)
    if not files:
        return WRITE_SCHEMA.empty_table()
    status = batch.column("status").to_pylist()
    reasons = Counter(
        str(reason)
        for s, reason in zip(status, batch.column("error_reason").to_pylist(), strict=True)
        if s == STATUS_ERROR
    )
    ok = sum(1 for s in status if s == STATUS_OK)
    rows = [
        {
            "data_file": pickle.dumps(data_file),
            "rows": data_file.record_count,
            "ok": ok if i == 0 else 0,
            "error_reasons": json.dumps(dict(reasons) if i == 0 else {}, sort_keys=True),
        }
        for i, data_file in enumerate(files)
    ]
    return pa.Table.from_pylist(rows, schema=WRITE_SCHEMA)


@dataclass
class Outcomes:
    """Row counts of what a run (or one commit) wrote."""

    rows: int = 0
    ok: int = 0
    error_reasons: Counter[str] = field(default_factory=Counter)

    @property
    def errors(self) -> int:
        """Error rows."""
        return sum(self.error_reasons.values())

    def add(self, other: Outcomes) -> None:
        """Accumulate ``other`` into this one."""
        self.rows += other.rows
        self.ok += other.ok
        self.error_reasons.update(other.error_reasons)


@dataclass(frozen=True)
class CommitPolicy:
    """When the driver commits: every ``rows`` rows or ``seconds`` seconds, at the latest."""

    rows: int
    seconds: float


class ProgressiveCommitter:
    """Collects writer output on the driver and commits it in snapshots."""

    def __init__(
        self,
        results: ResultsTable,
        properties: dict[str, str],
        policy: CommitPolicy,
        branch: str = results_table.MAIN,
    ) -> None:
        self.results = results
        self.properties = {
            **properties,
            f"{results_table.PROPERTY_PREFIX}attempt-id": uuid.uuid4().hex[:12],
        }
        self.policy = policy
        self.branch = branch
        self.committed = Outcomes()
        self.received = Outcomes()
        self.commits = 0
        self._pending: list[DataFile] = []
        self._pending_outcomes = Outcomes()
        self._last_commit = time.monotonic()

    def add(self, batch: pa.Table) -> None:
        """Take one block of writer output; commit when the policy says so."""
        for row in batch.to_pylist():
            self._pending.append(pickle.loads(row["data_file"]))  # our writer tasks' output
            outcomes = Outcomes(row["rows"], row["ok"], Counter(json.loads(row["error_reasons"])))
            self._pending_outcomes.add(outcomes)
            self.received.add(outcomes)
        due = time.monotonic() - self._last_commit >= self.policy.seconds
        if self._pending_outcomes.rows >= self.policy.rows or (self._pending and due):
            self.commit(final=False)

    def commit(self, *, final: bool, extra: dict[str, str] | None = None) -> int:
        """Commit what is pending as one snapshot (``final``: mark the run complete)."""
        done = self._pending_outcomes
        properties = {
            **self.properties,
            **(extra or {}),
            results_table.COMMIT_SEQ: str(self.commits),
            results_table.RUN_COMPLETE: "true" if final else "false",
            f"{results_table.PROPERTY_PREFIX}rows": str(done.rows),
            f"{results_table.PROPERTY_PREFIX}ok": str(done.ok),
            f"{results_table.PROPERTY_PREFIX}errors": str(done.errors),
        }
        snapshot_id = self.results.commit(self._pending, properties, self.branch)
        self.committed.add(done)
        self.commits += 1
        self._pending, self._pending_outcomes = [], Outcomes()
        self._last_commit = time.monotonic()
        return snapshot_id
