"""The W4A8 matmul kernels (edgekit._C, csrc/kernels) against the numpy reference, for every implementation this
machine can run: integer block sums bit-exact, float outputs within 1e-5 of the sum of |terms|."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from edgekit.quant import formats as F

_C = pytest.importorskip("edgekit._C")
IMPLS = _C.implementations("gemm_q4x4_q8")

KS = (32, 64, 96, 576, 1536, 4096)
NS = (1, 7, 8, 9, 1071)
MS = (1, 3, 33, 128)


def _weights(rng, n, k, kind="random"):
    if kind == "max":  # extreme codes: -8 and +7 against ±127 activations
        codes = rng.choice(np.array([0, 15], np.uint8), (n, k))
    else:
        codes = rng.integers(0, 16, (n, k)).astype(np.uint8)
    if kind == "zero-blocks":
        codes.reshape(n, k // 32, 32)[:, ::2] = 8
    scales = (rng.standard_normal((n, k // 32)) * 0.02).astype(np.float16)
    if kind == "zero-blocks":
        scales[:, 1::3] = 0
    return F.pack_int4(codes, 32), scales


def _acts(rng, m, k, kind="random"):
    if kind == "max":
        xq = rng.choice(np.array([-127, 127], np.int8), (m, k))
    else:
        xq = rng.integers(-127, 128, (m, k)).astype(np.int8)
    if kind == "zero-blocks":
        xq.reshape(m, k // 32, 32)[:, 1::2] = 0
    return xq, (rng.random(m) + 0.01).astype(np.float32)


def _block_scales(rng, xq):
    """Per-block activation scales ``[M, K/32]`` (the ``gemm_q4x4_q8b`` kernels) for codes ``xq``."""
    return xq, (rng.random((len(xq), xq.shape[1] // 32)) + 0.01).astype(np.float32)


def _packed(packed, scales, rows=4):
    n, k = packed.shape[0], packed.shape[1] * 2
    w = _C.PackedQ4(*F.pack_q4x4(packed, scales), n, k)
    return w.to_q4x16() if rows == 16 else w


def _check(packed, scales, xq, xs, impl, rows=4):
    n, k = packed.shape[0], packed.shape[1] * 2
    ref, blocks = F.gemm_q4_q8_reference(packed, scales, xq, xs)
    # integer part: unit scales make the float output the exact integer sum (|sum| < 2^24)
    unit = _packed(packed, np.ones_like(scales), rows).gemm(xq, np.ones_like(xs), impl)
    np.testing.assert_array_equal(unit.astype(np.int64), blocks.sum(-1), err_msg=f"{impl} integer sums")
    y = _packed(packed, scales, rows).gemm(xq, xs, impl)
    # forward error bound of a float dot product: relative to the sum of |products|, not to the (cancelled) result
    absprod = np.einsum("nbc,mbc->mnb", np.abs(F.unpack_int4(packed, 32).astype(np.int64) - 8).reshape(n, -1, 32),
                        np.abs(xq.astype(np.int64)).reshape(len(xq), -1, 32))
    if xs.ndim == 2:  # per-block scales weigh each block's products
        bound = (absprod * np.abs(scales.astype(np.float64))[None] * xs[:, None, :]).sum(-1)
    else:
        bound = (absprod * np.abs(scales.astype(np.float64))[None]).sum(-1) * xs[:, None]
    err = np.abs(y - ref)
    worst = np.unravel_index(np.argmax(err - 1e-5 * bound), err.shape)
    assert np.all(err <= 1e-5 * bound + 1e-30), f"{impl} m={len(xq)} n={n} k={k} worst at {worst}: {y[worst]} vs {ref[worst]}"


@pytest.mark.parametrize("impl", IMPLS)
def test_gemm_shape_sweep(impl):
    rng = np.random.default_rng(1)
    for k, n in itertools.product(KS, NS):
        packed, scales = _weights(rng, n, k)
        for m in MS:
            if n * k * m > 1071 * 1536 * 33:  # the biggest products add time, not coverage
                continue
            _check(packed, scales, *_acts(rng, m, k), impl)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", ["max", "zero-blocks"])
def test_gemm_edge_values(impl, kind):
    rng = np.random.default_rng(2)
    for m, n, k in [(1, 9, 4096), (5, 8, 96), (33, 7, 32)]:
        packed, scales = _weights(rng, n, k, kind)
        _check(packed, scales, *_acts(rng, m, k, kind), impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_gemm_fuzz(impl):
    rng = np.random.default_rng(3)
    for _ in range(60):
        m, n, k = int(rng.integers(1, 40)), int(rng.integers(1, 70)), 32 * int(rng.integers(1, 40))
        packed, scales = _weights(rng, n, k)
        _check(packed, scales, *_acts(rng, m, k), impl)


@pytest.mark.parametrize("impl", IMPLS)
def test_gemm_block_scales(impl):
    """The per-block-scale kernels (op gemm_q4x4_q8b) over the shape sweep and the edge values."""
    assert _C.implementations("gemm_q4x4_q8b") == IMPLS
    rng = np.random.default_rng(10)
    for k, n in itertools.product(KS, NS):
        packed, scales = _weights(rng, n, k)
        for m in MS:
            if n * k * m > 1071 * 576 * 33:
                continue
            _check(packed, scales, *_block_scales(rng, _acts(rng, m, k)[0]), impl)
    for kind in ("max", "zero-blocks"):
        for m, n, k in [(1, 9, 4096), (5, 8, 96), (33, 7, 32)]:
            packed, scales = _weights(rng, n, k, kind)
            _check(packed, scales, *_block_scales(rng, _acts(rng, m, k, kind)[0]), impl)


@pytest.mark.parametrize("impl", _C.implementations("gemm_q4x16_q8"))
def test_gemm_q4x16(impl):
    """The q4x16 layout (16 rows per group, AVX-512 VNNI): per-token and per-block scales over the shape sweep and
    the edge values, the exact integer sums, and the scalar's bits (its contract fixes the float order too)."""
    assert _C.implementations("gemm_q4x16_q8b") == _C.implementations("gemm_q4x16_q8")
    rng = np.random.default_rng(11)
    cases = [(m, n, k) for k, n in itertools.product(KS, NS) for m in MS if n * k * m <= 1071 * 576 * 33]
    cases += [(1, 17, 4096), (3, 16, 96), (2, 15, 64)]
    for m, n, k in cases:
        packed, scales = _weights(rng, n, k)
        xq, xs = _acts(rng, m, k)
        for x_scales in (xs, _block_scales(rng, xq)[1]):
            _check(packed, scales, xq, x_scales, impl, rows=16)
            w = _packed(packed, scales, 16)
            np.testing.assert_array_equal(w.gemm(xq, x_scales, impl), w.gemm(xq, x_scales, "scalar"))
    for kind in ("max", "zero-blocks"):
        for m, n, k in [(1, 9, 4096), (5, 8, 96), (33, 7, 32)]:
            packed, scales = _weights(rng, n, k, kind)
            xq, xs = _acts(rng, m, k, kind)
            _check(packed, scales, xq, xs, impl, rows=16)
            _check(packed, scales, *_block_scales(rng, xq), impl, rows=16)


def test_q4x16_linear_and_errors():
    rng = np.random.default_rng(12)
    packed, scales = _weights(rng, 37, 576)
    w4 = _packed(packed, scales)
    w16 = w4.to_q4x16()
    assert (w16.rows, w16.n, w16.k) == (16, 37, 576)
    x = rng.standard_normal((5, 576)).astype(np.float32)
    for per_block in (False, True):
        a, b = w4.linear(x, per_block=per_block), w16.linear(x, per_block=per_block)
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * np.abs(a).max())
    with pytest.raises(ValueError, match="already q4x16"):
        w16.to_q4x16()
    with pytest.raises(ValueError, match="q4x4 layout only"):
        w16.gemm(np.zeros((1, 576), np.int8), np.ones(1, np.float32), int4=True)
    with pytest.raises(ValueError, match="q4x16 arrays do not match"):
        _C.PackedQ4(np.zeros(10, np.uint8), np.zeros(10, np.uint16), 37, 576, rows=16)


def test_threads_do_not_change_results():
    rng = np.random.default_rng(4)
    # K=4096 at M=33: each thread's slice is walked in L2-sized chunks of tiles, more chunks at more threads
    for n, k in [(1071, 576), (1071, 4096)]:
        packed, scales = _weights(rng, n, k)
        x = rng.standard_normal((33, k)).astype(np.float32)
        w = _C.PackedQ4(*F.pack_q4x4(packed, scales), n, k)
        w16 = w.to_q4x16()
        before = _C.get_num_threads()
        try:
            outs = []
            for t in (1, 2, 3, 7):
                _C.set_num_threads(t)
                outs.append(np.stack([w.linear(x), w.linear(x, per_block=True), w16.linear(x, per_block=True)]))
        finally:
            _C.set_num_threads(before)
        for o in outs[1:]:
            np.testing.assert_array_equal(o, outs[0])


def test_native_pack_matches_python_layout():
    rng = np.random.default_rng(5)
    for n, k in [(1, 32), (7, 96), (9, 576)]:
        packed, scales = _weights(rng, n, k)
        qs, d = _C.pack_q4x4(F.q4_0_rows(packed, scales).reshape(-1), n, k)
        pqs, pd = F.pack_q4x4(packed, scales)
        np.testing.assert_array_equal(qs, pqs)
        np.testing.assert_array_equal(d, pd)


def test_linear_equals_quantize_then_gemm():
    rng = np.random.default_rng(6)
    packed, scales = _weights(rng, 9, 96)
    x = rng.standard_normal((5, 96)).astype(np.float32)
    w = _C.PackedQ4(*F.pack_q4x4(packed, scales), 9, 96)
    xq, xs = F.quantize_rows_q8(x)
    np.testing.assert_array_equal(w.linear(x), w.gemm(xq, xs))
    q4, s4 = F.quantize_rows_q8(x, 7)  # per-row qmax: W4A4 tokens
    rows = np.array([127, 7, 127, 7, 7], np.int32)
    mixed = w.linear(x, rows)
    np.testing.assert_array_equal(mixed[1], w.gemm(q4[1:2], s4[1:2])[0])
    np.testing.assert_array_equal(mixed[0], w.gemm(xq[:1], xs[:1])[0])
    bq, bs = F.quantize_blocks_q8(x)  # per-block activations: GGUF Q8_0's blocking
    np.testing.assert_array_equal(w.linear(x, per_block=True), w.gemm(bq, bs))
    with pytest.raises(ValueError, match="qmax must be None"):
        w.linear(x, rows, per_block=True)
    with pytest.raises(ValueError, match="block scales per row"):
        w.gemm(bq, np.ascontiguousarray(bs[:, :1]))


def test_bad_inputs_get_clear_errors():
    rng = np.random.default_rng(7)
    packed, scales = _weights(rng, 8, 64)
    qs, d = F.pack_q4x4(packed, scales)
    with pytest.raises(ValueError, match="multiple of 32"):
        _C.PackedQ4(qs, d, 8, 48)
    with pytest.raises(ValueError, match="do not match"):
        _C.PackedQ4(qs[:-1], d, 8, 64)
    w = _C.PackedQ4(qs, d, 8, 64)
    with pytest.raises(ValueError, match="float32"):
        w.linear(np.zeros((2, 64), np.float64))
    with pytest.raises(ValueError, match="K=32"):
        w.linear(np.zeros((2, 32), np.float32))
    with pytest.raises(ValueError, match="C-contiguous"):
        w.linear(np.zeros((64, 2), np.float32).T)
    with pytest.raises(ValueError, match="int8"):
        w.gemm(np.zeros((2, 64), np.uint8), np.ones(2, np.float32))
    with pytest.raises(ValueError, match="no implementation"):
        w.linear(np.zeros((2, 64), np.float32), impl="avx9000")


@pytest.mark.parametrize("impl", _C.implementations("gemm_q4x4_q4"))
def test_w4a4_packed_multiplier(impl):
    """Agile-Quant's packed-multiplier kernels: exact integer block sums for int4 activations (-7..7)."""
    rng = np.random.default_rng(8)
    for m, n, k in [(1, 7, 32), (3, 9, 96), (5, 1071, 576), (33, 8, 1536), (2, 5, 4096)]:
        for kind in ("random", "max", "zero-blocks"):
            packed, scales = _weights(rng, n, k, kind)
            xq = rng.integers(-7, 8, (m, k)).astype(np.int8)
            if kind == "max":
                xq = rng.choice(np.array([-7, 7], np.int8), (m, k))
            xs = (rng.random(m) + 0.01).astype(np.float32)
            ref, blocks = F.gemm_q4_q8_reference(packed, scales, xq, xs)
            unit = _C.PackedQ4(*F.pack_q4x4(packed, np.ones_like(scales)), n, k)
            got = unit.gemm(xq, np.ones(m, np.float32), impl, int4=True)
            np.testing.assert_array_equal(got.astype(np.int64), blocks.sum(-1), err_msg=f"{impl} {m}x{n}x{k}")
            y = _C.PackedQ4(*F.pack_q4x4(packed, scales), n, k).gemm(xq, xs, impl, int4=True)
            np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())


def test_w4a4_rejects_int8_codes():
    rng = np.random.default_rng(9)
    packed, scales = _weights(rng, 4, 32)
    w = _C.PackedQ4(*F.pack_q4x4(packed, scales), 4, 32)
    with pytest.raises(ValueError, match="-7..7"):
        w.gemm(np.full((1, 32), 8, np.int8), np.ones(1, np.float32), int4=True)


@pytest.mark.parametrize("impl", _C.implementations("gemm_f16_f32"))
def test_gemm_f16_matches_numpy_and_scalar(impl):
    """The LM head kernel: fp16 weights × fp32 activations; every ISA gives the scalar's bits (kernels.h order)."""
    rng = np.random.default_rng(7)
    for m, n, k in [(1, 1, 1), (1, 37, 576), (3, 9, 17), (5, 64, 100), (2, 5, 16)]:
        w = rng.standard_normal((n, k)).astype(np.float16)
        x = rng.standard_normal((m, k)).astype(np.float32)
        y = _C.gemm_f16_f32(w.view(np.uint16), x, impl)
        ref = x.astype(np.float64) @ w.astype(np.float64).T
        mag = np.abs(x.astype(np.float64)) @ np.abs(w.astype(np.float64)).T
        assert np.all(np.abs(y - ref) <= 1e-5 * mag + 1e-30), (m, n, k, np.abs(y - ref).max())
        np.testing.assert_array_equal(y, _C.gemm_f16_f32(w.view(np.uint16), x, "scalar"))
        for i in range(m):  # decode (one row) gives the bits of the batch
            np.testing.assert_array_equal(_C.gemm_f16_f32(w.view(np.uint16), x[i:i + 1], impl)[0], y[i])


@pytest.mark.parametrize("impl", _C.implementations("gemm_q8_0_f32"))
def test_gemm_q8_0_matches_the_f16_contract(impl):
    """The 8-bit LM head kernel: Q8_0 rows × fp32 activations give exactly gemm_f16_f32's sums over the values
    q * fp16(d) (kernels.h), every ISA the scalar's bits, decode the batch's bits."""
    rng = np.random.default_rng(8)
    for m, n, k in [(1, 1, 32), (1, 37, 576), (3, 9, 64), (5, 65, 96), (2, 3, 32)]:
        w = rng.standard_normal((n, k)).astype(np.float32) * rng.uniform(0.01, 3, (n, 1)).astype(np.float32)
        w[0, :32] = 0  # a zero block: scale 0
        x = rng.standard_normal((m, k)).astype(np.float32)
        q, d = _C.quantize_q8_0(w)
        y = _C.gemm_q8_0_f32(q, d, x, impl)
        values = q.astype(np.float32) * np.repeat(d.view(np.float16).astype(np.float32), 32, axis=1)
        ref = x.astype(np.float64) @ values.astype(np.float64).T
        mag = np.abs(x.astype(np.float64)) @ np.abs(values.astype(np.float64)).T
        assert np.all(np.abs(y - ref) <= 1e-5 * mag + 1e-30), (m, n, k, np.abs(y - ref).max())
        np.testing.assert_array_equal(y, _C.gemm_q8_0_f32(q, d, x, "scalar"))
        for i in range(m):
            np.testing.assert_array_equal(_C.gemm_q8_0_f32(q, d, x[i:i + 1], impl)[0], y[i])
    with pytest.raises(ValueError, match="multiple of 32"):
        _C.gemm_q8_0_f32(np.zeros((2, 48), np.int8), np.zeros((2, 1), np.uint16), np.zeros((1, 48), np.float32))


@pytest.mark.parametrize("impl", _C.implementations("gemm_q8_0_q8b"))
def test_gemm_q8_0_q8b_is_the_integer_head(impl):
    """lm_head_act_bits 8: the activations rounded per block of 32 (formats.quantize_blocks_q8, the rule of every
    W4A8 linear's per-block input), then exact integer block sums times the two scales: within float rounding of
    that product in float64, every ISA the scalar's bits, decode the batch's bits."""
    from edgekit.quant.formats import quantize_blocks_q8

    rng = np.random.default_rng(9)
    for m, n, k in [(1, 1, 32), (1, 37, 576), (3, 9, 64), (5, 65, 96), (2, 3, 32)]:
        w = rng.standard_normal((n, k)).astype(np.float32) * rng.uniform(0.01, 3, (n, 1)).astype(np.float32)
        w[0, :32] = 0  # a zero block: scale 0
        x = rng.standard_normal((m, k)).astype(np.float32) * 4
        x[0, -32:] = 0  # a zero activation block
        q, d = _C.quantize_q8_0(w)
        y = _C.gemm_q8_0_q8b(q, d, x, impl)
        xq, xs = quantize_blocks_q8(x)
        blocks = np.einsum("mbc,nbc->mnb", xq.reshape(m, -1, 32).astype(np.int64), q.reshape(n, -1, 32).astype(np.int64))
        scale = xs[:, None, :].astype(np.float64) * d.view(np.float16).astype(np.float64)[None]
        ref = (blocks * scale).sum(-1)
        mag = (np.abs(blocks) * np.abs(scale)).sum(-1)
        assert np.all(np.abs(y - ref) <= 1e-5 * mag + 1e-30), (m, n, k, np.abs(y - ref).max())
        np.testing.assert_array_equal(y, _C.gemm_q8_0_q8b(q, d, x, "scalar"))
        for i in range(m):
            np.testing.assert_array_equal(_C.gemm_q8_0_q8b(q, d, x[i:i + 1], impl)[0], y[i])
        # against the float-activation head on the same table: each activation moved by at most half its block's
        # step, so the logit by at most sum over blocks of step / 2 * sum |w| (plus float rounding)
        y32 = _C.gemm_q8_0_f32(q, d, x, "scalar")
        values = np.abs(q.astype(np.float64)) * np.repeat(d.view(np.float16).astype(np.float64), 32, axis=1)
        bound = (xs[:, None, :] / 2) * values.reshape(n, -1, 32).sum(-1)[None]
        assert np.all(np.abs(y - y32) <= bound.sum(-1) * (1 + 1e-4) + 1e-5 * mag + 1e-30)
    with pytest.raises(ValueError, match="multiple of 32"):
        _C.gemm_q8_0_q8b(np.zeros((2, 48), np.int8), np.zeros((2, 1), np.uint16), np.zeros((1, 48), np.float32))


def test_quantize_q8_0_is_the_python_rule_and_a_fixed_point():
    """ek_quantize_q8_0 (the runtime's loader) = formats.quantize_q8_0 (the quantizer, the GGUF export), bit for bit,
    ties included; and a table on the Q8_0 grid comes back with the same values (the same codes and scales, except
    where a block's scale underflows fp16 to 0: its values are 0 either way)."""
    from edgekit.quant.formats import dequantize_q8_0, quantize_q8_0

    rng = np.random.default_rng(9)
    x = (rng.standard_normal((64, 96)) * rng.lognormal(0, 2, (64, 1))).astype(np.float32)
    x[1, :32] = 0
    x[2, :32] = np.arange(32) - 15.5  # amax 16.5: codes at exact .5 ties for some values
    x[3, 32:64] = 1e-30  # subnormal scales
    qc, dc = _C.quantize_q8_0(x)
    qp, dp = quantize_q8_0(x)
    np.testing.assert_array_equal(qc, qp)
    np.testing.assert_array_equal(dc, dp.view(np.uint16))
    grid = dequantize_q8_0(qp, dp)
    q2, d2 = _C.quantize_q8_0(grid)
    np.testing.assert_array_equal(dequantize_q8_0(q2, d2.view(np.float16)), grid)
    live = np.repeat(dp.astype(np.float32) != 0, 32, axis=1)
    np.testing.assert_array_equal(q2[live], qc[live])
    assert (~live).sum() == 64  # the all-zero block and the underflowing one


def _attention_reference(q, kt, v, scale):
    """float64 softmax attention of q [g, hd] over keys kt [hd, n] and values v [n, hd]."""
    s = q.astype(np.float64) @ kt.astype(np.float64) * scale
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p @ v.astype(np.float64), p


@pytest.mark.parametrize("impl", _C.implementations("attn_f16_f32"))
def test_attention_matches_numpy_and_scalar(impl):
    """The fused attention kernel: scores, softmax and value sum of a KV head's query heads; every ISA gives the
    scalar's bits, and a head's result does not depend on the other heads in the call."""
    rng = np.random.default_rng(8)
    # g around the ISAs' blocks of query rows (4; 6 on AVX2; 12 on AVX-512): one block, a block and one row, two
    # blocks and one
    for g, n, hd in [(1, 1, 64), (3, 300, 64), (3, 17, 64), (4, 8, 14), (5, 33, 2), (9, 7, 64), (6, 48, 64),
                     (7, 5, 64), (13, 129, 32), (12, 1000, 64),
                     (25, 40, 64), (24, 31, 16)]:
        q = rng.standard_normal((g, hd)).astype(np.float32)
        kt = (rng.standard_normal((hd, n + 3)) * 0.5).astype(np.float16)  # three spare slots: ldk > n
        v = rng.standard_normal((n, hd)).astype(np.float16)
        scale = 1.0 / np.sqrt(hd)
        out, p, first = _C.attn_f16_f32(q, kt.view(np.uint16), v.view(np.uint16), scale, impl)
        ref, pref = _attention_reference(q, kt[:, :n], v, scale)
        np.testing.assert_allclose(p, pref, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
        np.testing.assert_array_equal(first, p[:, 0])
        scalar = _C.attn_f16_f32(q, kt.view(np.uint16), v.view(np.uint16), scale, "scalar")
        for a, b in zip((out, p, first), scalar):
            np.testing.assert_array_equal(a, b)
        for h in sorted({0, g // 2, g - 1}):  # a row alone gives its bits in any block
            one, _, _ = _C.attn_f16_f32(q[h:h + 1], kt.view(np.uint16), v.view(np.uint16), scale, impl)
            np.testing.assert_array_equal(one[0], out[h])


@pytest.mark.parametrize("n_kv, group", [(3, 3), (3, 2), (1, 5), (5, 4)])
def test_runtime_attention_same_bits_on_any_thread_count(n_kv, group):
    """The runtime's attention splits a KV head's query heads into two tasks when the rows are too few to share
    evenly among the threads (decode of 3 KV heads on 2 threads): every thread count gives the same bits."""
    rng = np.random.default_rng(11)
    hd, length = 64, 40
    old = _C.get_num_threads()
    try:
        for n in (1, 2, 3, 7):
            q = rng.standard_normal((n, n_kv * group, hd)).astype(np.float32)
            k = rng.standard_normal((length, n_kv, hd)).astype(np.float32)
            v = rng.standard_normal((length, n_kv, hd)).astype(np.float32)
            outs = []
            for t in (1, 2, 3):
                _C.set_num_threads(t)
                outs.append(_C.attention_causal(q, k, v))
            for o in outs[1:]:
                np.testing.assert_array_equal(o, outs[0])
    finally:
        _C.set_num_threads(old)


@pytest.mark.parametrize("n_kv, group", [(3, 3), (1, 5), (2, 4)])
def test_prefill_attention_gives_each_token_its_decode_bits(n_kv, group):
    """Prefill batches four causal positions per kernel call (rows of their own lengths, kernels.h: lens): every
    token's output equals the per-token call at its position (decode), for chunks of several sizes and offsets."""
    rng = np.random.default_rng(12)
    hd = 64
    for n, length in [(8, 8), (9, 40), (13, 13), (30, 70)]:
        q = rng.standard_normal((n, n_kv * group, hd)).astype(np.float32)
        k = rng.standard_normal((length, n_kv, hd)).astype(np.float32)
        v = rng.standard_normal((length, n_kv, hd)).astype(np.float32)
        full = _C.attention_causal(q, k, v)
        base = length - n
        for i in range(n):
            one = _C.attention_causal(q[i:i + 1], k[:base + i + 1], v[:base + i + 1])
            np.testing.assert_array_equal(one[0], full[i], err_msg=f"n={n} token {i}")


@pytest.mark.parametrize("impl", _C.implementations("attn_f16_f32"))
def test_attention_bias_is_added_after_the_scale(impl):
    """The optional score bias (T5's relative position bias, scale 1): the reference with the bias added to the
    scaled scores, every ISA the scalar's bits."""
    rng = np.random.default_rng(9)
    for g, n, hd in [(1, 5, 64), (3, 37, 64), (5, 16, 14), (6, 64, 64), (7, 23, 64), (13, 130, 32)]:
        q = rng.standard_normal((g, hd)).astype(np.float32)
        kt = (rng.standard_normal((hd, n)) * 0.5).astype(np.float16)
        v = rng.standard_normal((n, hd)).astype(np.float16)
        bias = (rng.standard_normal((g, n)) * 3).astype(np.float32)
        out, p, _ = _C.attn_f16_f32(q, kt.view(np.uint16), v.view(np.uint16), 1.0, impl, bias)
        s = q.astype(np.float64) @ kt.astype(np.float64) + bias
        pref = np.exp(s - s.max(1, keepdims=True))
        pref /= pref.sum(1, keepdims=True)
        np.testing.assert_allclose(p, pref, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(out, pref @ v.astype(np.float64), rtol=1e-4, atol=1e-5)
        scalar = _C.attn_f16_f32(q, kt.view(np.uint16), v.view(np.uint16), 1.0, "scalar", bias)
        for a, b in zip((out, p), scalar):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="bias must be"):
        _C.attn_f16_f32(q, kt.view(np.uint16), v.view(np.uint16), 1.0, impl, bias[:, :-1])


def test_attention_rejects_bad_shapes():
    q = np.zeros((3, 64), np.float32)
    with pytest.raises(ValueError, match="kt must be"):
        _C.attn_f16_f32(q, np.zeros((64, 4), np.uint16), np.zeros((5, 64), np.uint16), 0.125)
    with pytest.raises(ValueError, match="v must be"):
        _C.attn_f16_f32(q, np.zeros((64, 5), np.uint16), np.zeros((5, 32), np.uint16), 0.125)


@pytest.mark.parametrize("impl", _C.implementations("silu_mul_f32"))
def test_silu_mul_matches_numpy_and_scalar(impl):
    rng = np.random.default_rng(10)
    g = np.concatenate([rng.standard_normal(1001) * 6, [0.0, -0.0, 200.0, -200.0, 88.5, -88.5]]).astype(np.float32)
    u = rng.standard_normal(g.size).astype(np.float32)
    y = _C.silu_mul_f32(g, u, impl)
    ref = g.astype(np.float64) / (1 + np.exp(-g.astype(np.float64))) * u
    np.testing.assert_allclose(y, ref, rtol=2e-6, atol=1e-30)
    np.testing.assert_array_equal(y, _C.silu_mul_f32(g, u, "scalar"))


@pytest.mark.parametrize("impl", _C.implementations("gelu_mul_f32"))
def test_gelu_mul_matches_torch_tanh_gelu_and_scalar(impl):
    """T5's gated GELU: gelu_pytorch_tanh(g) * u (float64 reference), every implementation the scalar bits."""
    rng = np.random.default_rng(11)
    g = np.concatenate([rng.standard_normal(1001) * 6, [0.0, -0.0, 30.0, -30.0, 1e-3, -1e-3]]).astype(np.float32)
    u = rng.standard_normal(g.size).astype(np.float32)
    y = _C.gelu_mul_f32(g, u, impl)
    x = g.astype(np.float64)
    ref = 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))) * u
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(y, _C.gelu_mul_f32(g, u, "scalar"))


@pytest.mark.parametrize("impl", _C.implementations("cvt_f32_f16"))
def test_fp32_to_fp16_is_numpys_rounding(impl):
    rng = np.random.default_rng(9)
    x = np.concatenate([rng.standard_normal(10000) * 10.0 ** rng.integers(-9, 6, 10000),
                        [0.0, -0.0, 65504.0, 65519.99, 65520.0, 1e9, -1e9, 2.0 ** -25, 1.5 * 2.0 ** -25, 2.0 ** -24,
                         np.inf, -np.inf, 1.0 + 2.0 ** -11, 1.0 + 3 * 2.0 ** -11]]).astype(np.float32)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(_C.fp32_to_fp16(x, impl), x.astype(np.float16).view(np.uint16))
    assert np.isnan(_C.fp32_to_fp16(np.array([np.nan] * 9, np.float32), impl).view(np.float16)).all()
