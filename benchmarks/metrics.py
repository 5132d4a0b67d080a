"""Benchmark: metric computation time and peak RSS for an MVTec-sized test set.

Generates ``--maps`` (default 1,700) anomaly maps of ``--size`` (518) px in ``--classes`` (15)
classes, ~70 % anomalous with blob-shaped masks of 1 region or more, batch by batch, and feeds
them to :class:`vip2clip.eval.report.EvaluationAccumulator` as ``vip2clip evaluate`` does.
Prints the time spent in metric code (generation excluded) and the process's peak RSS.
``--exact-class`` also times scikit-learn's pixel AUROC on one full class and compares.

    python benchmarks/metrics.py [--maps 1700] [--size 518] [--exact-class]
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Iterator

import numpy as np

from vip2clip.eval.histogram import DEFAULT_BINS, PixelAccumulator
from vip2clip.eval.report import EvaluationAccumulator

PATCH = 14  # ViT-L/14: maps are upsampled from a (size / 14)^2 patch grid
ANOMALOUS_SHARE = 0.7  # MVTec AD test set: 1,258 of 1,725 images are anomalous
BATCH = 8
KIB = 1024


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KIB


def blob_masks(rng: np.random.Generator, count: int, size: int) -> np.ndarray:
    """(count, size, size) uint8 masks: 1-3 ellipses each, 0.1 %-5 % of the image."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    masks = np.zeros((count, size, size), dtype=np.uint8)
    for mask in masks:
        for _ in range(rng.integers(1, 4)):
            cy, cx = rng.uniform(0.1, 0.9, size=2) * size
            ry, rx = rng.uniform(0.01, 0.12, size=2) * size
            mask[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 1
    return masks


def bilinear_matrix(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) weights of 1-D linear interpolation with ``align_corners=False``."""
    centres = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    centres = np.clip(centres, 0, size_in - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, size_in - 1)
    frac = centres - low
    weights = np.zeros((size_out, size_in))
    weights[np.arange(size_out), low] += 1 - frac
    weights[np.arange(size_out), high] += frac
    return weights


def smooth_maps(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    """Maps in [0, 1]: patch-grid noise upsampled bilinearly, raised inside the masks."""
    count, size, _ = masks.shape
    up_matrix = bilinear_matrix(size // PATCH, size)
    noise = rng.normal(0.0, 1.0, (count, size // PATCH, size // PATCH))
    up = np.einsum("yi,bij,xj->byx", up_matrix, noise, up_matrix, optimize=True)
    logits = up - 1.5 + 2.5 * masks * rng.uniform(0.3, 1.0, (count, 1, 1))
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


def batches(
    n_maps: int, size: int, n_classes: int, seed: int
) -> Iterator[tuple[list[str], np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Class by class, ``BATCH`` at a time: names, labels, scores, maps, masks."""
    rng = np.random.default_rng(seed)
    per_class = np.array_split(np.arange(n_maps), n_classes)
    for class_index, indices in enumerate(per_class):
        for start in range(0, len(indices), BATCH):
            count = len(indices[start : start + BATCH])
            labels = (rng.random(count) < ANOMALOUS_SHARE).astype(np.int64)
            masks = blob_masks(rng, count, size) * labels[:, None, None].astype(np.uint8)
            maps = smooth_maps(rng, masks)
            scores = rng.normal(labels * 1.0, 0.7)
            yield [f"class{class_index:02d}"] * count, labels, scores, maps, masks


def run(args: argparse.Namespace) -> None:
    """Accumulate every batch, compute the report, print timings and memory."""
    rss_start = peak_rss_mib()
    accumulator = EvaluationAccumulator(bins=args.bins)
    exact_maps: list[np.ndarray] = []
    exact_masks: list[np.ndarray] = []
    generate_s = accumulate_s = accumulate_cpu_s = 0.0
    clock = time.perf_counter()
    for names, labels, scores, maps, masks in batches(args.maps, args.size, args.classes, 0):
        generated, cpu = time.perf_counter(), time.process_time()
        generate_s += generated - clock
        accumulator.add(names, labels, scores, maps, masks)
        clock = time.perf_counter()
        accumulate_s += clock - generated
        accumulate_cpu_s += time.process_time() - cpu
        if args.exact_class and names[0] == "class00":
            exact_maps.append(maps)
            exact_masks.append(masks)
    start, cpu = time.perf_counter(), time.process_time()
    report = accumulator.report()
    report_s, report_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    print(
        f"maps: {args.maps} x {args.size}x{args.size} in {args.classes} classes, {args.bins} bins"
    )
    print(f"generation (not metric code): {generate_s:.1f} s wall")
    print(
        f"metric accumulation: {accumulate_s:.1f} s wall, {accumulate_cpu_s:.1f} s CPU "
        f"({args.maps / accumulate_cpu_s:.0f} maps per CPU-second)"
    )
    print(
        f"metric report (every metric, all classes + pooled): {report_s:.2f} s wall, "
        f"{report_cpu_s:.2f} s CPU"
    )
    print(f"peak RSS: {peak_rss_mib():.0f} MiB (after imports {rss_start:.0f} MiB)")
    print(
        f"mean pixel AUROC {report.mean.pixel_auroc:.4f}, AUPRO {report.mean.pixel_aupro:.4f}, "
        f"F1-max {report.mean.pixel_f1_max:.4f}; AUROC error bound "
        f"{report.pixel_auroc_error_bound:.2e}"
    )
    if args.exact_class:
        compare_exact(np.concatenate(exact_maps), np.concatenate(exact_masks), args.bins)


def compare_exact(maps: np.ndarray, masks: np.ndarray, bins: int) -> None:
    """scikit-learn's exact pixel AUROC on one class vs the histogram's."""
    from sklearn.metrics import roc_auc_score

    start = time.perf_counter()
    exact = roc_auc_score(masks.ravel(), maps.ravel())
    exact_s = time.perf_counter() - start
    acc = PixelAccumulator(bins)
    acc.update(maps, masks)
    print(
        f"class00 ({len(maps)} maps): sklearn AUROC {exact:.8f} in {exact_s:.1f} s, "
        f"histogram {acc.auroc():.8f} (|diff| {abs(exact - acc.auroc()):.1e}, "
        f"bound {acc.auroc_error_bound():.1e}); peak RSS now {peak_rss_mib():.0f} MiB"
    )


def main() -> None:
    """Parse arguments and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--maps", type=int, default=1700)
    parser.add_argument("--size", type=int, default=518)
    parser.add_argument("--classes", type=int, default=15)
    parser.add_argument("--bins", type=int, default=DEFAULT_BINS)
    parser.add_argument("--exact-class", action="store_true", help="compare with scikit-learn")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
