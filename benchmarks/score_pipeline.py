"""Scoring-pipeline benchmark: end-to-end images/s vs the detector forward alone, and the
driver's peak memory as the archive grows.

    python benchmarks/score_pipeline.py                      # tiny + ViT-L-14-336 + RSS
    python benchmarks/score_pipeline.py --vitl-n 0 --rss 1000,10000

Everything runs on one local Ray cluster started here (``LocalCluster``, token auth).
Each pipeline measurement is a separate driver process (``--child``) so its peak RSS
is its own. Weights are random (no download); only the architecture matters here.

* ``forward``: ``Detector.score_pixels`` on preprocessed batches of the same size, with
  as many torch threads as one inference actor gets (``--cpus-per-actor``).
* ``e2e``: ``run_scoring`` over a local folder, listing to committed Parquet, as wall
  time of the whole run (fixed start-up included: driver probe, actor start, model
  load). The RSS runs of two archive sizes also give the marginal throughput
  (difference of rows / difference of seconds), where the start-up cancels out: the
  rate a long nightly run sees.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
TINY: dict[str, Any] = {"model": "vip2clip-tiny", "image_size": 112}
VITL: dict[str, Any] = {"model": "ViT-L-14-336", "image_size": 518}
KIB = 1024


def detector_dict(model: str, image_size: int, seed: int = 0) -> dict[str, Any]:
    """DetectorConfig fields of a randomly initialised backbone of ``model``."""
    return {
        "backbone": {"model": model, "pretrained": None, "seed": seed},
        "image_size": image_size,
        "device": "cpu",
    }


def make_archive(folder: Path, n: int, seed: int = 0, distinct: int = 64) -> Path:
    """``n`` small PNG/JPEG files (64-112 px); ``distinct`` different images, reused."""
    rng = np.random.default_rng(seed)
    blobs = []
    for i in range(min(n, distinct)):
        pixels = rng.integers(0, 256, (64 + i % 49, 112 - i % 49, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG" if i % 2 else "JPEG")
        blobs.append((buffer.getvalue(), "png" if i % 2 else "jpg"))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        data, ext = blobs[i % len(blobs)]
        (folder / f"{i // 1000:03d}" / f"img-{i:06d}.{ext}").parent.mkdir(exist_ok=True)
        (folder / f"{i // 1000:03d}" / f"img-{i:06d}.{ext}").write_bytes(data)
    return folder


# --------------------------------------------------------------------------- child


def child(args: argparse.Namespace) -> None:
    """One scoring run as its own driver; prints a JSON line with time and peak RSS."""
    import ray

    from vip2clip.scoring import ScoringConfig, run_scoring

    ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=False)
    config = ScoringConfig.model_validate(
        {
            "source": args.source,
            "table": "bench.results",  # embedded catalog under VIP2CLIP_HOME (a temp dir)
            "mode": "full",
            "detector": json.loads(args.detector),
            "batch_size": args.batch_size,
            "cpus_per_actor": args.cpus_per_actor,
            "progress": False,
            "run_id": "bench",
        }
    )
    start = time.perf_counter()
    summary = run_scoring(config)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    result = {
        "rows": summary.scored,
        "ok": summary.ok,
        "seconds": seconds,
        "peak_mib": peak_kib / KIB,
    }
    print(json.dumps(result))


def run_child(
    cluster: Any, source: Path, detector: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    output = Path(tempfile.mkdtemp(prefix="v2c-bench-out-"))
    command = [
        sys.executable, __file__, "--child", "--source", str(source),
        "--detector", json.dumps(detector), "--batch-size", str(args.batch_size),
        "--cpus-per-actor", str(args.cpus_per_actor),
    ]  # fmt: skip
    env = {
        **cluster.client_env(),
        "RAY_ADDRESS": cluster.address,
        "PYTHONPATH": str(REPO),
        "VIP2CLIP_HOME": str(output),
    }
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    finally:
        shutil.rmtree(output, ignore_errors=True)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- forward


def forward_rate(
    detector: dict[str, Any], archive: Path, n: int, args: argparse.Namespace
) -> float:
    """Images/s of ``Detector.score_pixels`` alone on preprocessed batches (no I/O)."""
    import torch

    from vip2clip.data.decode import decode_image
    from vip2clip.data.preprocess import preprocess_image
    from vip2clip.model import DetectorConfig, load_detector

    torch.set_num_threads(max(1, int(args.cpus_per_actor)))
    det = load_detector(DetectorConfig.model_validate(detector))
    files = sorted(p for p in archive.rglob("*") if p.is_file())[:n]
    pixels = torch.stack(
        [preprocess_image(decode_image(p.read_bytes()), det.image_size) for p in files]
    )
    det.score_pixels(pixels[:1])  # warm-up (one image: ViT-L on a CPU is slow)
    start = time.perf_counter()
    for i in range(0, len(pixels), args.batch_size):
        det.score_pixels(pixels[i : i + args.batch_size])
    return len(pixels) / (time.perf_counter() - start)


def throughput(
    cluster: Any, name: str, spec: dict[str, Any], n: int, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    detector = detector_dict(spec["model"], spec["image_size"])
    archive = make_archive(work / f"{name}-{n}", n)
    fwd = forward_rate(detector, archive, n, args)
    run = run_child(cluster, archive, detector, args)
    return {
        "backbone": f"{spec['model']} @ {spec['image_size']} px",
        "n": n,
        "forward": fwd,
        "e2e_wall": run["rows"] / run["seconds"],
    }


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny-n", type=int, default=1000, help="images of the tiny run (0: skip)")
    parser.add_argument("--vitl-n", type=int, default=8, help="images of the ViT-L run (0: skip)")
    parser.add_argument("--vitl-image-size", type=int, default=VITL["image_size"])
    parser.add_argument(
        "--rss", default="1000,10000", help="archive sizes for driver RSS ('' skips)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--cpus-per-actor", type=float, default=1.0)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--source", help=argparse.SUPPRESS)
    parser.add_argument("--detector", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    from vip2clip.local_cluster import LocalCluster

    work = Path(tempfile.mkdtemp(prefix="v2c-bench-"))
    cluster = LocalCluster().start()
    rows: list[dict[str, Any]] = []
    rss: list[tuple[int, dict[str, Any]]] = []
    try:
        if args.tiny_n:
            rows.append(throughput(cluster, "tiny", TINY, args.tiny_n, args, work))
        if args.vitl_n:
            spec = {**VITL, "image_size": args.vitl_image_size}
            rows.append(throughput(cluster, "vitl", spec, args.vitl_n, args, work))
        for n in [int(x) for x in args.rss.split(",") if x.strip()]:
            rss.append(
                (
                    n,
                    run_child(
                        cluster, make_archive(work / f"rss-{n}", n), detector_dict(**TINY), args
                    ),
                )
            )
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    print_report(rows, rss, args)


def print_report(
    rows: list[dict[str, Any]], rss: list[tuple[int, dict[str, Any]]], args: argparse.Namespace
) -> None:
    print(
        f"\nbatch size {args.batch_size}, {args.cpus_per_actor:g} CPU per inference actor, "
        f"{os.cpu_count()} CPUs on this machine (load average {os.getloadavg()[0]:.1f})"
    )
    if rows:
        print(f"{'backbone':<28}{'n':>6}{'forward img/s':>15}{'e2e wall img/s':>16}{'e2e %':>7}")
        for r in rows:
            share = 100 * r["e2e_wall"] / r["forward"]
            print(
                f"{r['backbone']:<28}{r['n']:>6}{r['forward']:>15.4g}{r['e2e_wall']:>16.4g}"
                f"{share:>7.0f}"
            )
    if rss:
        print(f"\n{'objects (tiny)':<16}{'rows':>8}{'seconds':>10}{'driver peak RSS MiB':>22}")
        for n, result in rss:
            print(
                f"{n:<16}{result['rows']:>8}{result['seconds']:>10.1f}{result['peak_mib']:>22.1f}"
            )
        for (n0, r0), (n1, r1) in itertools.pairwise(rss):
            rate = (r1["rows"] - r0["rows"]) / max(1e-9, r1["seconds"] - r0["seconds"])
            print(f"e2e marginal {n0}->{n1} objects (start-up cancelled out): {rate:.1f} img/s")


if __name__ == "__main__":
    main()
