"""Shared helpers of the benchmark scripts: timing, peak measurement, table printing."""

from __future__ import annotations

import resource
import statistics
import time
from collections.abc import Callable, Sequence

import torch


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def matmul_peak_flops(dtype: torch.dtype, size: int = 2048, device: str = "cpu") -> float:
    """Achieved FLOP/s of a plain ``size``² matmul: the practical peak of this machine."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)

    def run() -> None:
        a @ b
        if device != "cpu":
            torch.cuda.synchronize()

    seconds = median_seconds(run, repeats=5, warmup=2)
    return 2 * size**3 / seconds


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn``: matmuls, convolutions and attention, as torch counts them.

    Counted with the math attention backend: torch's counter has no formula for the fused
    CPU attention kernel and would leave attention out (~18% of ViT-L/14 at 518 px).
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        fn()
    return int(counter.get_total_flops())


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Print a Markdown table."""
    cells = [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in cells:
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)
