"""CPU cost per image of the scoring pipeline's host stages, and the GPU rate they can feed.

A GPU actor only stays busy if the CPU stages around it keep up. This benchmark runs each of
them on one core: decode and resize (JPEG and PNG sources), the inference actor's host work
(uint8 batch in, anomaly-map bytes out), and postprocessing (decision, PNG mask, region
statistics). It prints milliseconds per image and how many CPU cores 100 images/s need.

    python benchmarks/host_stages.py                       # 1024 px sources, 518 px model
    python benchmarks/host_stages.py --source-size 2048 --images 16
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import print_table
from vip2clip.data.preprocess import normalize_rgb
from vip2clip.scoring import stages

MODEL_SIZE = 518


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-size", type=int, default=1024, help="source image side (px)")
    parser.add_argument("--image-size", type=int, default=MODEL_SIZE, help="model input side")
    parser.add_argument("--images", type=int, default=32)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # per-core costs
    image = _texture(args.source_size)
    size, n = args.image_size, args.images
    rows: list[list[object]] = []
    for fmt in ("JPEG", "PNG"):
        block = _read_block(_encoded(image, fmt), n)
        ms = _ms_per_image(partial(stages.decode_objects, block, size, 10**9), n)
        rows.append([f"decode + resize ({fmt} {args.source_size} px)", ms, ms / 10])
    decoded = stages.decode_objects(_read_block(_encoded(image, "JPEG"), n), size, 10**9)
    ms = _ms_per_image(lambda: _actor_host_work(decoded, size), n)
    rows.append(["GPU actor host work (rows in, maps out)", ms, ms / 10])
    ms = _ms_per_image(lambda: _normalise(decoded, size), n)
    rows.append(["normalisation (CPU inference only)", ms, ms / 10])
    scored = _scored_block(_anomaly_map(size), n)
    ms = _ms_per_image(lambda: stages.to_results(scored, "bench", "2026-12-05"), n)
    rows.append(["postprocess (decision, PNG mask, regions)", ms, ms / 10])
    gpu_path = (rows[0], rows[2], rows[4])  # JPEG decode, GPU actor, postprocess
    total_jpeg = sum(float(str(row[1])) for row in gpu_path)
    print(f"{n} images, source {args.source_size} px, model {size} px, one thread")
    print_table(["stage", "ms/image (1 core)", "cores per 100 images/s"], rows)
    print(
        f"GPU scoring of JPEG sources: {total_jpeg:.1f} CPU-ms per image, so every 100 "
        f"images/s need {total_jpeg / 10:.1f} cores for the host stages"
    )
    return 0


def _ms_per_image(run: Callable[[], object], images: int) -> float:
    run()  # warm-up
    started = time.process_time()
    run()
    return (time.process_time() - started) * 1000 / images


def _texture(side: int) -> Image.Image:
    """A photo-like texture: smooth gradients plus fine noise (compresses like real images)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side] / side
    base = 127 + 60 * np.sin(6 * x + 3 * y)[..., None] + rng.normal(0, 12, (side, side, 3))
    return Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


# The columns every stage's rows start with: one object that was read without error.
_READ_OK: dict[str, object] = {
    "object_etag": "e",
    "object_mtime": None,
    "status": "ok",
    "error_reason": None,
    "error_detail": None,
    "read_ms": 1.0,
}


def _block(n: int, row: dict[str, object], schema: pa.Schema | None = None) -> pa.Table:
    rows = [{"source_uri": f"s3://bench/{i}.img", **_READ_OK, **row} for i in range(n)]
    return pa.Table.from_pylist(rows, schema=schema)


def _read_block(data: bytes, n: int) -> pa.Table:
    return _block(n, {"object_size": len(data), "data": data})


def _actor_host_work(decoded: pa.Table, size: int) -> pa.Table:
    """What a GPU inference actor does on the host around the model: rows in, the uint8
    batch stacked, each map turned into bytes, rows out (normalisation runs on the GPU)."""
    rows = decoded.to_pylist()
    rgb = torch.from_numpy(np.stack([stages.pixels_array(r["pixels"], size) for r in rows]))
    maps = rgb[..., 0].float().numpy()  # stands in for the (B, S, S) maps back from the GPU
    for row, anomaly in zip(rows, maps, strict=True):
        row["anomaly_map"] = np.ascontiguousarray(anomaly, dtype=stages.MAP_DTYPE).tobytes()
        del row["pixels"]
    return pa.Table.from_pylist(rows)


def _normalise(decoded: pa.Table, size: int) -> torch.Tensor:
    blobs = decoded.column("pixels").to_pylist()
    return normalize_rgb(torch.from_numpy(np.stack([stages.pixels_array(b, size) for b in blobs])))


def _anomaly_map(size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    return (0.3 + 0.6 * np.exp(-((x - 0.4) ** 2 + (y - 0.6) ** 2) / 0.01)).astype(np.float32)


def _scored_block(anomaly: np.ndarray, n: int) -> pa.Table:
    scored = {
        "object_size": 1,
        "decode_ms": 1.0,
        "image_width": 1024,
        "image_height": 1024,
        "model_id": "bench",
        "image_score": 0.7,
        "image_threshold": 0.5,
        "pixel_threshold": 0.6,
        "map_size": anomaly.shape[0],
        "anomaly_map": anomaly.tobytes(),
        "inference_ms": 1.0,
    }
    return _block(n, scored, stages.SCORED_SCHEMA)


if __name__ == "__main__":
    sys.exit(main())
