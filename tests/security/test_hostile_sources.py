"""A manifest an attacker or a careless user wrote: every line ends as exactly one row.

Next to two good images the manifest names an ``http://`` URL on a closed port,
``/dev/zero`` (and a symlink to it), a 40 GiB sparse file, a directory, a FIFO,
a socket and a name longer than the OS allows. The listing and read/decode stage
functions the pipeline chains (``manifest_to_listing`` -> ``fill_identity`` ->
``load_objects``) run in a fresh interpreter whose peak RSS is reset just before
(``/proc/self/clear_refs``): they must end in seconds, add no more than a few MiB
to the interpreter's RSS, give 2 ``ok`` rows and one error row per bad line with its own
permanent reason, and the next incremental night must skip all of them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from tests.reliability.helpers import REPO, image_bytes
from vip2clip.data.decode import TRANSIENT_REASONS
from vip2clip.scoring.identity import ScoredKeys
from vip2clip.scoring.source import LISTING_SCHEMA

SPARSE_BYTES = 40 * 1024**3
NAME_MAX = 255  # bytes per path component on Linux filesystems
NIGHT_TIMEOUT_S = 120  # the subprocess imports pyarrow, PIL, torch: generous on 2 shared cores
MAX_NIGHT_SECONDS = 15.0  # the stage work itself; a blocked FIFO or a 40 GiB read never ends
MAX_EXTRA_RSS_MIB = 64  # peak over the RSS before the night; one capped read is 256 MiB

# A scoring night at stage level: the functions pipeline.py maps over the blocks.
NIGHT = """
import json, re, sys, time
import pyarrow as pa
import pyarrow.parquet as pq
from vip2clip.scoring import source, stages
from vip2clip.storage import StorageConfig

def kib(field):  # VmRSS / VmHWM (peak) of this process, KiB
    return int(re.search(field + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1))

manifest, out = sys.argv[1], sys.argv[2]
lines = open(manifest, encoding="utf-8").read().splitlines()
block = pa.table({"text": lines})  # what ray.data.read_text gives a text manifest
open("/proc/self/clear_refs", "w").write("5")  # restart the peak from the current RSS
baseline = kib("VmRSS")
start = time.monotonic()
listing = source.fill_identity(
    source.manifest_to_listing(block, manifest.rsplit("/", 1)[0]), StorageConfig()
)
rows = stages.load_objects(listing, StorageConfig(), attempts=2, image_size=32, max_pixels=10**8)
seconds = time.monotonic() - start
pq.write_table(rows.drop_columns(["pixels"]), out)
print(json.dumps({"extra_rss_kib": kib("VmHWM") - baseline, "seconds": seconds}))
"""


def _hostile_manifest(root: Path) -> tuple[Path, dict[str, str]]:
    """The manifest and, per line, the outcome it must get."""
    rng = np.random.default_rng(5)
    for i in range(2):
        (root / f"good-{i}.png").write_bytes(image_bytes(rng, 2 * i))
    with (root / "huge.png").open("wb") as handle:
        handle.truncate(SPARSE_BYTES)  # sparse: costs no disk, reports 40 GiB
    (root / "folder.png").mkdir()
    os.mkfifo(root / "pipe.png")
    (root / "zero.png").symlink_to("/dev/zero")
    expected = {
        "good-0.png": "ok",
        "good-1.png": "ok",
        "http://127.0.0.1:9/x.png": "unsupported_uri",
        "/dev/zero": "not_a_file",
        "zero.png": "not_a_file",
        "huge.png": "too_large",
        "folder.png": "not_a_file",
        "pipe.png": "not_a_file",
        "socket.png": "not_a_file",
        "n" * (NAME_MAX + 1) + ".png": "name_too_long",
    }
    manifest = root / "manifest.txt"
    manifest.write_text("# hostile night\n" + "\n".join(expected) + "\n", encoding="utf-8")
    return manifest, expected


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    manifest, expected = _hostile_manifest(tmp_path)
    # Bound by a process that accepts nothing: connecting or opening it must never happen.
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(tmp_path / "socket.png"))
        yield manifest, expected


@dataclass(frozen=True)
class Night:
    """The rows one stage-level night gave, and what it cost."""

    rows: pa.Table
    extra_rss_kib: int
    seconds: float


def _night(manifest: Path, name: str = "night") -> Night:
    out = manifest.parent / f"{name}.parquet"
    proc = subprocess.run(
        [sys.executable, "-c", NIGHT, str(manifest), str(out)],
        capture_output=True, text=True, timeout=NIGHT_TIMEOUT_S, check=False, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    cost = json.loads(proc.stdout.strip().splitlines()[-1])
    return Night(pq.read_table(out), cost["extra_rss_kib"], cost["seconds"])


def _entry(uri: str, root: Path) -> str:
    return uri.removeprefix(f"{root}/")


def test_every_hostile_line_is_one_row_with_its_own_reason(
    hostile: tuple[Path, dict[str, str]],
) -> None:
    manifest, expected = hostile
    night = _night(manifest)
    rows = night.rows.to_pylist()
    outcomes = {
        _entry(r["source_uri"], manifest.parent): r["error_reason"] or r["status"] for r in rows
    }
    assert len(rows) == len(expected)  # exactly one row per line, none dropped or doubled
    assert outcomes == expected
    assert night.seconds < MAX_NIGHT_SECONDS, night.seconds
    assert night.extra_rss_kib < MAX_EXTRA_RSS_MIB * 1024, night.extra_rss_kib


def test_the_next_incremental_night_does_not_retry_permanent_refusals(
    hostile: tuple[Path, dict[str, str]],
) -> None:
    manifest, expected = hostile
    first, second = _night(manifest, "first"), _night(manifest, "second")
    assert not set(expected.values()) & TRANSIENT_REASONS
    # What the results store counts as scored: ok rows and non-transient error rows.
    transient = pc.is_in(first.rows["error_reason"], pa.array(sorted(TRANSIENT_REASONS)))
    scored = first.rows.filter(pc.invert(pc.fill_null(transient, False)))
    assert scored.num_rows == len(expected)
    keys = ScoredKeys.from_table(scored.select(LISTING_SCHEMA.names))
    # The next night lists the same manifest: every identity is already scored.
    assert keys.unscored(second.rows.select(LISTING_SCHEMA.names)).num_rows == 0
