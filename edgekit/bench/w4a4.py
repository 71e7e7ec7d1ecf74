"""W4A4 kernel choice: Agile-Quant's packed multiplier (op ``gemm_q4x4_q4``) against the int8 kernels (op
``gemm_q4x4_q8``) on the same int4 activation codes, per ISA, in one run.

The W4A4 tokens of the per-token mix carry codes in -7..7, which both ops compute exactly; whichever is faster
on an ISA should run them there. ``edgekit bench kernels --w4a4`` prints the table that BENCHMARKS.md records.
"""

from __future__ import annotations

import numpy as np

from edgekit.bench.kernels import random_weights
from edgekit.bench.report import MISSING, markdown_table
from edgekit.bench.timing import time_calls


def run_w4a4_bench(shapes, ms=(1, 16, 128), threads_list=(1,), min_time: float = 0.2, min_reps: int = 5,
                   rounds: int = 3, seed: int = 0) -> list[dict]:
    """Median per-call seconds of every supported implementation of both ops on int4 activations.

    Returns:
        Rows with ``op`` (``packed-int4`` or ``int8``), ``kernel``, ``m``, ``n``, ``k``, ``threads``,
        ``median_s``, ``gops`` and ``vs_best_int8`` (speed relative to the fastest int8 kernel of that row set).
    """
    from edgekit import _C

    rng = np.random.default_rng(seed)
    before = _C.get_num_threads()
    rows: list[dict] = []
    try:
        for n, k in shapes:
            w = random_weights(n, k, rng)[0]
            for m in ms:
                xq = rng.integers(-7, 8, (m, k)).astype(np.int8)
                xs = np.ones(m, np.float32)
                calls = {("packed-int4", i): (lambda i=i: w.gemm(xq, xs, i, int4=True))
                         for i in _C.implementations("gemm_q4x4_q4")}
                calls.update({("int8", i): (lambda i=i: w.gemm(xq, xs, i)) for i in _C.implementations("gemm_q4x4_q8")})
                ref = w.gemm(xq, xs, "scalar")
                for fn in calls.values():  # every kernel computes the same exact integers
                    np.testing.assert_allclose(fn(), ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max()))
                for t in threads_list:
                    _C.set_num_threads(t)
                    samples = {key: [] for key in calls}
                    for _ in range(rounds):  # interleaved, so machine noise hits every kernel alike
                        for key, fn in calls.items():
                            samples[key] += time_calls(fn, min_time / rounds, -(-min_reps // rounds))
                    block = [{"op": op, "kernel": kern, "m": m, "n": n, "k": k, "threads": t,
                              "median_s": float(np.median(s)), "gops": 2.0 * m * n * k / float(np.median(s)) / 1e9}
                             for (op, kern), s in samples.items()]
                    best8 = min(r["median_s"] for r in block if r["op"] == "int8")
                    for r in block:
                        r["vs_best_int8"] = best8 / r["median_s"]
                    rows += block
    finally:
        _C.set_num_threads(before)
    return rows


def w4a4_markdown(rows: list[dict]) -> str:
    """Markdown table: one line per shape, M and threads; µs per kernel of each op."""
    keys = sorted({(r["op"], r["kernel"]) for r in rows}, key=lambda x: (x[0] != "int8", x[1]))
    header = ["shape (N×K)", "M", "threads"] + [f"{op} {kern} µs" for op, kern in keys]
    configs = sorted({(r["n"], r["k"], r["m"], r["threads"]) for r in rows}, key=lambda c: (c[0] * c[1], c[2], c[3]))
    lines = []
    for n, k, m, t in configs:
        cells = []
        for op, kern in keys:
            r = next((r for r in rows if (r["op"], r["kernel"], r["n"], r["k"], r["m"], r["threads"])
                      == (op, kern, n, k, m, t)), None)
            cells.append(f"{r['median_s'] * 1e6:.1f}" if r else MISSING)
        lines.append([f"{n}×{k}", str(m), str(t)] + cells)
    return markdown_table(header, lines, "l" * len(header))
