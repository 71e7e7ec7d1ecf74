"""The roofline probes (csrc/kernels/<isa>/roofline.cpp, csrc/runtime/roofline.cpp): each read and dot probe this CPU
runs, on a small buffer and a short run, at 1 and 2 pool threads. No speed is asserted: the read probe must have read
every byte (its checksum is the exact sum of the buffer's 64-bit words), the dot probe must return a positive finite
rate for the work it reports, and bad arguments are one ValueError."""

from __future__ import annotations

import math

import pytest

from edgekit import _C

READ_ALIGN = 256  # EK_ROOF_READ_ALIGN


def _expected_read_checksum(nbytes: int, threads: int, passes: int) -> int:
    """Part t of the buffer is filled with byte 0x5a + t; a pass adds every 64-bit word of every part (mod 2**64)."""
    part = -(-nbytes // (threads * READ_ALIGN)) * READ_ALIGN
    total = 0
    for t in range(threads):
        word = int.from_bytes(bytes([(0x5A + t) & 0xFF]) * 8, "little")
        total += (part // 8) * word
    return (passes * total) % 2 ** 64


@pytest.fixture(params=[1, 2])
def threads(request):
    old = _C.get_num_threads()
    _C.set_num_threads(request.param)
    yield request.param
    _C.set_num_threads(old)


@pytest.mark.parametrize("impl", _C.roofline_impls()[0])
def test_read_probe_reads_every_byte(impl, threads):
    nbytes, passes = 3 * 2 ** 20 + 100, 3  # not a multiple of the step: rounded up per thread
    r = _C.roofline_read_bandwidth(nbytes, passes, impl)
    assert r["impl"] == impl and r["threads"] == threads
    assert r["work"] == threads * (-(-nbytes // (threads * READ_ALIGN)) * READ_ALIGN)
    assert math.isfinite(r["per_s"]) and r["per_s"] > 0 and r["best_s"] > 0
    assert r["per_s"] == pytest.approx(r["work"] / r["best_s"])
    assert r["checksum"] == _expected_read_checksum(nbytes, threads, passes), impl


@pytest.mark.parametrize("impl", _C.roofline_impls()[1])
def test_dot_probe_runs(impl, threads):
    r = _C.roofline_int8_peak(0.01, 2, impl)
    assert r["impl"] == impl and r["threads"] == threads
    assert math.isfinite(r["per_s"]) and r["per_s"] > 0 and r["work"] > 0
    assert r["per_s"] == pytest.approx(r["work"] / r["best_s"])


def test_dot_probe_follows_the_gemm_kernel():
    reads, dots, default = _C.roofline_impls()
    assert reads[0] == "scalar" and dots[0] == "scalar"
    gemm = _C.selected("gemm_q4x4_q8")
    assert default == (gemm if gemm in dots else "scalar")
    assert _C.roofline_int8_peak(0.01, 1)["impl"] == default


def test_bad_arguments_are_value_errors():
    with pytest.raises(ValueError, match="no read probe 'sse9'"):
        _C.roofline_read_bandwidth(2 ** 20, 1, "sse9")
    with pytest.raises(ValueError, match="bytes and passes"):
        _C.roofline_read_bandwidth(0, 1)
    with pytest.raises(ValueError, match="seconds must be > 0"):
        _C.roofline_int8_peak(0.0, 1)
    with pytest.raises(ValueError, match="no dot probe"):
        _C.roofline_int8_peak(0.01, 1, "avx512")
