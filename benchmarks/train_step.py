"""Seconds per training epoch with and without the frozen-feature cache, on this machine.

Runs the real training step (``vip2clip.training.steps``) in one process on random pixels,
so the numbers isolate the model: epoch 1 encodes every sample either way; with the cache,
later epochs only run the learned head. Examples::

    python benchmarks/train_step.py                      # tiny backbone, 112 px, 32 samples
    python benchmarks/train_step.py --model ViT-L-14-336 --image-size 336 --samples 4 --batch 2
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from vip2clip.training.config import TrainingConfig, load_training_config
from vip2clip.training.feature_cache import FeatureCache
from vip2clip.training.order import batched
from vip2clip.training.steps import (
    LearnedHead,
    Row,
    batch_features,
    batch_targets,
    build_model,
    build_optimizer,
    train_step,
)

DEFECT_FRACTION = 4  # every 4th sample carries a square defect mask


def _rows(samples: int, size: int, seed: int) -> list[Row]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(samples):
        mask = np.zeros((size, size), dtype=np.uint8)
        label = int(i % DEFECT_FRACTION == 0)
        if label:
            mask[size // 4 : size // 2, size // 4 : size // 2] = 1
        pixels = rng.standard_normal((3, size, size)).astype(np.float32)
        rows.append(Row(key=f"bench://{i}.png", label=label, mask=mask, pixels=pixels))
    return rows


def _epoch_seconds(
    config: TrainingConfig, rows: list[Row], epochs: int, cached: bool, encode_batch: int
) -> list[float]:
    model, _ = build_model(config, config.storage)
    model.train()
    optimizer = build_optimizer(model, config.optimizer)
    head = LearnedHead(model)
    cache = FeatureCache(max_bytes=config.cache.max_bytes) if cached else None
    device = torch.device("cpu")
    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        for batch in batched(rows, config.optimizer.batch_size):
            features = batch_features(model, batch, cache, device, encode_batch)
            masks, labels = batch_targets(batch, device)
            train_step(head, optimizer, features, masks, labels)
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vip2clip-tiny", help="open_clip config (random init)")
    parser.add_argument("--image-size", type=int, default=112)
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    config = load_training_config(
        None,
        (
            "dataset.uri=/unused",
            "storage_uri=/unused",
            f"detector.backbone.model={args.model}",
            "detector.backbone.pretrained=null",
            f"detector.image_size={args.image_size}",
            f"optimizer.batch_size={args.batch}",
        ),
    )
    rows = _rows(args.samples, args.image_size, seed=0)
    print(
        f"{args.model} @ {args.image_size}px, {args.samples} samples, batch {args.batch}, "
        f"{torch.get_num_threads()} threads"
    )
    # One image per encoder pass is the baseline (the previous training path); the
    # training loop encodes uncached samples in passes of the whole per-worker batch.
    for cached, encode_batch in ((False, 1), (False, args.batch), (True, args.batch)):
        seconds = _epoch_seconds(config, rows, args.epochs, cached, encode_batch)
        shown = ", ".join(f"{s:.2f}" for s in seconds)
        print(
            f"  cache {'on ' if cached else 'off'}, {encode_batch} image(s) per encoder pass: "
            f"seconds per epoch [{shown}]"
        )


if __name__ == "__main__":
    main()
