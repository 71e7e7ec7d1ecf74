"""The weight chunks (csrc/runtime/weight_arena.cpp): regrouped weights are cache-line aligned, packed side by side in
2 MiB-aligned chunks, and the chunks go back to the system when the weights are dropped."""

import gc
import os
import subprocess
import sys

import numpy as np
import pytest

from edgekit import _C
from edgekit.bench.kernels import random_weights

MIB = 1 << 20


def _q4x16(n, k, rng):
    return random_weights(n, k, rng)[0].to_q4x16()


def test_weights_are_aligned_and_share_chunks():
    rng = np.random.default_rng(0)
    before = _C.weight_arena_bytes()
    ws = [_q4x16(n, k, rng) for n, k in [(576, 576), (192, 576), (1536, 576), (576, 1536), (100, 96)]]
    for w in ws:
        qs, d = w.addresses
        assert qs % 64 == 0 and d % 64 == 0  # the kernels' 512-bit loads never straddle two cache lines
    held = _C.weight_arena_bytes() - before
    assert held % (2 * MIB) == 0
    assert held <= 32 * MIB  # ~1.4 MB of small weights: at most one new chunk, not one per array
    x = rng.standard_normal((3, 576)).astype(np.float32)
    assert np.array_equal(ws[0].linear(x, per_block=True), ws[0].linear(x, per_block=True, impl="scalar"))
    del ws, w
    gc.collect()
    assert _C.weight_arena_bytes() <= before + 32 * MIB  # only the reusable current chunk may stay


def test_a_large_weight_gets_a_chunk_of_its_own_and_returns_it():
    rng = np.random.default_rng(1)
    small = _q4x16(64, 64, rng)  # keeps a current chunk alive, so what comes back below is the large one's
    before = _C.weight_arena_bytes()
    big = _q4x16(16384, 2048, rng)  # 16 MiB of codes: half a chunk or more
    grown = _C.weight_arena_bytes() - before
    assert 16 * MIB <= grown <= 20 * MIB and grown % (2 * MIB) == 0
    assert big.addresses[0] % (2 * MIB) == 0
    del big
    gc.collect()
    assert _C.weight_arena_bytes() == before
    del small


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="transparent huge pages are Linux's")
@pytest.mark.parametrize("value, on", [(None, True), ("0", False), ("1", True)])
def test_hugepage_advice_follows_the_environment(value, on):
    env = {k: v for k, v in os.environ.items() if k != "EDGEKIT_HUGEPAGES"}
    if value is not None:
        env["EDGEKIT_HUGEPAGES"] = value
    out = subprocess.run([sys.executable, "-c", "from edgekit import _C; print(_C.weight_hugepages())"], env=env,
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(on)
