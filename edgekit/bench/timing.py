"""Timing of repeated calls, shared by the kernel benchmarks (``edgekit bench kernels`` and its ``--w4a4`` table)."""

from __future__ import annotations

import time


def time_calls(fn, min_time: float, min_reps: int) -> list[float]:
    """Per-call seconds of ``fn`` until both ``min_time`` seconds and ``min_reps`` calls are reached."""
    samples: list[float] = []
    start = time.perf_counter()
    while len(samples) < min_reps or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return samples
