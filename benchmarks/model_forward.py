"""Detector forward throughput: tiny and ViT-L-14-336 shapes, batch sizes, fp32 / bf16.

Each configuration is compared, in the same run, with the official-style baseline: our
model scoring one image at a time in fp32 (what the official test.py does). Prints
images/s, seconds per image, achieved GFLOP/s and the share of this machine's measured
matmul peak. Random weights: no download.

    python benchmarks/model_forward.py                      # everything (slow for ViT-L on CPU)
    python benchmarks/model_forward.py --models tiny --batch-sizes 1,8
    python benchmarks/model_forward.py --models vitl --batch-sizes 1,8 --compile
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import (
    count_flops,
    matmul_peak_flops,
    median_seconds,
    peak_rss_gb,
    print_table,
)
from vip2clip.model import BackboneSpec, DetectorConfig, load_detector


@dataclass(frozen=True)
class Shape:
    name: str
    model: str
    image_size: int


SHAPES = {
    "tiny": Shape("tiny", "vip2clip-tiny", 112),
    "vitl": Shape("ViT-L-14-336 @518", "ViT-L-14-336", 518),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="tiny,vitl")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--compile", action="store_true", help="also run each precision through torch.compile"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = "cuda" if args.device == "auto" and torch.cuda.is_available() else "cpu"
    if args.device != "auto":
        device = args.device
    peaks = {p: matmul_peak_flops(_dtype(p), device=device) for p in args.precisions.split(",")}
    print(
        f"device={device} threads={torch.get_num_threads()} matmul peak: "
        + ", ".join(f"{p} {v / 1e9:.0f} GFLOP/s" for p, v in peaks.items())
    )
    rows = []
    for key in args.models.split(","):
        shape = SHAPES[key]
        rows.extend(_bench_shape(shape, args, device, peaks))
    print_table(
        [
            "model",
            "precision",
            "batch",
            "s/image",
            "images/s",
            "GFLOP/image",
            "GFLOP/s",
            "% peak",
            "vs per-image fp32",
        ],
        rows,
    )
    print(f"peak RSS {peak_rss_gb():.2f} GB")
    return 0


def _bench_shape(
    shape: Shape, args: argparse.Namespace, device: str, peaks: dict[str, float]
) -> list[list[object]]:
    rows: list[list[object]] = []
    baseline = None
    modes = (False, True) if args.compile else (False,)
    variants = [(p, c) for p in args.precisions.split(",") for c in modes]
    flops = _image_flops(shape, device)
    for precision, compiled in variants:
        config = DetectorConfig(
            backbone=BackboneSpec(model=shape.model, pretrained=None),
            image_size=shape.image_size,
            device=device,
            precision=precision,
            compile=compiled,
        )
        detector = load_detector(config)
        for batch in [int(b) for b in args.batch_sizes.split(",")]:
            pixels = torch.randn(batch, 3, shape.image_size, shape.image_size)
            # the warm-up call of each shape also pays a compilation
            repeats = max(1, args.repeats if batch * flops < 5e12 else 1)
            seconds = median_seconds(partial(detector.score_pixels, pixels), repeats)
            per_image = seconds / batch
            if precision == "fp32" and batch == 1 and not compiled:
                baseline = per_image
            achieved = flops / per_image
            speedup = f"{baseline / per_image:.2f}x" if baseline else "-"
            rows.append(
                [
                    shape.name,
                    precision + ("+compile" if compiled else ""),
                    batch,
                    per_image,
                    1 / per_image,
                    flops / 1e9,
                    achieved / 1e9,
                    100 * achieved / peaks[precision],
                    speedup,
                ]
            )
        del detector
    return rows


def _image_flops(shape: Shape, device: str) -> int:
    """FLOPs of one image through the eager fp32 detector (the same for every variant)."""
    config = DetectorConfig(
        backbone=BackboneSpec(model=shape.model, pretrained=None),
        image_size=shape.image_size,
        device=device,
    )
    detector = load_detector(config)
    one = torch.randn(1, 3, shape.image_size, shape.image_size)
    return count_flops(lambda: detector.score_pixels(one))


def _dtype(precision: str) -> torch.dtype:
    return torch.bfloat16 if precision == "bf16" else torch.float32


if __name__ == "__main__":
    sys.exit(main())
