"""Byte layouts: pack/unpack round trips and the symmetric format against an independent numpy reading."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgekit.quant import formats
from edgekit.quant.weights import QuantizedWeight, rtn_quantize


@pytest.mark.parametrize("n,k,g", [(1, 32, 32), (7, 64, 32), (9, 96, 32), (3, 576, 32), (5, 128, 128), (4, 8, 8)])
def test_pack_unpack_round_trip(n, k, g):
    rng = np.random.default_rng(n * k + g)
    codes = rng.integers(0, 16, size=(n, k), dtype=np.uint8)
    packed = formats.pack_int4(codes, g)
    assert packed.shape == (n, k // 2) and packed.dtype == np.uint8
    np.testing.assert_array_equal(formats.unpack_int4(packed, g), codes)


def test_group_split_nibble_order_is_gguf_q4_0():
    """Byte j of a 32-group holds code j (low nibble) and code j+16 (high nibble), as GGUF Q4_0's qs."""
    codes = np.arange(32, dtype=np.uint8)[None] % 16
    codes[0, 16:] = 15 - codes[0, 16:]
    packed = formats.pack_int4(codes, 32)[0]
    for j in range(16):
        assert packed[j] & 0x0F == codes[0, j]
        assert packed[j] >> 4 == codes[0, j + 16]


def test_dequantize_matches_independent_reading():
    rng = np.random.default_rng(1)
    n, k, g = 6, 96, 32
    codes = rng.integers(0, 16, size=(n, k), dtype=np.uint8)
    scales = rng.normal(size=(n, k // g)).astype(np.float16)
    mins = rng.normal(size=(n, k // g)).astype(np.float16)
    packed = formats.pack_int4(codes, g)
    want_sym = np.array([[(int(codes[r, c]) - 8) * np.float32(scales[r, c // g]) for c in range(k)] for r in range(n)])
    want_asym = np.array([[codes[r, c] * np.float32(scales[r, c // g]) + np.float32(mins[r, c // g])
                           for c in range(k)] for r in range(n)])
    np.testing.assert_array_equal(formats.dequantize_int4(packed, scales, g), want_sym.astype(np.float32))
    np.testing.assert_allclose(formats.dequantize_int4(packed, scales, g, mins), want_asym, rtol=1e-6)


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError):
        formats.pack_int4(np.zeros((2, 48), np.uint8), 32)
    with pytest.raises(ValueError):
        formats.pack_int4(np.full((2, 32), 16, np.uint8), 32)


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("g", [32, 0])
def test_quantized_weight_storage_round_trip(symmetric, g):
    torch.manual_seed(0)
    w = torch.randn(7, 96)
    q = rtn_quantize(w, 4, g, symmetric, search=True)
    back = QuantizedWeight.from_storage(q.storage(), q.scales, q.mins, 4, q.group_size)
    np.testing.assert_array_equal(back.codes, q.codes)
    torch.testing.assert_close(back.dequantize(), q.dequantize(), rtol=0, atol=0)
    # the torch dequantization and the numpy format reading agree exactly
    np.testing.assert_array_equal(
        formats.dequantize_int4(q.storage(), q.scales, q.group_size, q.mins), q.dequantize().numpy())


def test_rtn_error_is_bounded_and_search_helps():
    torch.manual_seed(0)
    w = torch.randn(64, 256) * torch.rand(64, 1)
    plain = rtn_quantize(w, 4, 32, True, search=False)
    searched = rtn_quantize(w, 4, 32, True, search=True)
    step = w.abs().view(64, 8, 32).amax(-1).repeat_interleave(32, -1) / 8
    # the peak maps onto -8*d, so the far end (+7*d) may clip by up to one step; nothing is off by more
    assert ((plain.dequantize() - w).abs() <= step * 1.01 + 1e-6).all()
    assert (searched.dequantize() - w).pow(2).sum() < (plain.dequantize() - w).pow(2).sum()


def test_per_row_activation_rule():
    x = np.array([[0.0, 1.0, -2.0, 0.5], [0, 0, 0, 0]], np.float32)
    q, s = formats.quantize_rows_q8(x)
    np.testing.assert_array_equal(q[0], np.rint(x[0] * np.float32(127 / 2.0)).astype(np.int8))
    assert s[0] == np.float32(2.0) / np.float32(127) and s[1] == 0 and not q[1].any()


def test_constants_match_formats_h():
    """edgekit/quant/formats.py and csrc/include/edgekit/formats.h describe the same bytes: the constants the native
    module was compiled with, the size and field offsets of a GGUF Q4_0 block against the bytes q4_0_rows writes, the
    q4x4 arrays pack_q4x4 builds (tile size, padding codes) and the symmetric zero code."""
    from edgekit import _C

    c = _C.format_constants()
    assert c["q4_block"] == formats.Q4_0_BLOCK
    assert c["q8_row_qmax"] == formats.Q8_ROW_QMAX and c["q4_act_qmax"] == formats.Q4_ACT_QMAX
    assert c["q4x4_rows"] == formats.Q4X4_ROWS and c["q4x16_rows"] == formats.Q4X16_ROWS
    assert c["q4x4_tile_qs_bytes"] == formats.Q4X4_ROWS * formats.Q4_0_BLOCK // 2
    assert c["q4x16_group_qs_bytes"] == formats.Q4X16_ROWS * formats.Q4_0_BLOCK // 2

    # ek_block_q4_0 {uint16 d; uint8 qs[16]} against q4_0_rows: the fp16 scale bits, then the packed codes verbatim
    rng = np.random.default_rng(5)
    n, k = 3, 64
    packed = formats.pack_int4(rng.integers(0, 16, size=(n, k), dtype=np.uint8), formats.Q4_0_BLOCK)
    scales = rng.normal(size=(n, k // formats.Q4_0_BLOCK)).astype(np.float16)
    rows = formats.q4_0_rows(packed, scales)
    assert c["sizeof_block_q4_0"] == formats.Q4_0_BLOCK_BYTES
    assert rows.shape == (n, k // formats.Q4_0_BLOCK * c["sizeof_block_q4_0"])
    blocks = rows.reshape(n, -1, c["sizeof_block_q4_0"])
    off = c["offsetof_block_q4_0_qs"]
    np.testing.assert_array_equal(blocks[:, :, :off].copy().view(np.uint16)[..., 0], scales.view(np.uint16))
    np.testing.assert_array_equal(blocks[:, :, off:].reshape(n, -1), packed)

    # q4x4: one tile block is q4x4_tile_qs_bytes code bytes and q4x4_rows scales; padding rows hold the zero code
    qs, d = formats.pack_q4x4(packed, scales)
    tiles, nb = -(-n // c["q4x4_rows"]), k // c["q4_block"]
    assert qs.size == tiles * nb * c["q4x4_tile_qs_bytes"] and d.size == tiles * nb * c["q4x4_rows"]
    pad = qs.reshape(tiles, nb, c["q4x4_rows"], -1)[:, :, n:]
    assert pad.size and (pad == c["q4_sym_zero"] * 0x11).all()
    zero = formats.pack_int4(np.full((1, 32), c["q4_sym_zero"], np.uint8), 32)
    assert not formats.dequantize_int4(zero, np.ones((1, 1), np.float16), 32).any()
    # the native packer reads the same Q4_0 bytes into the same arrays
    qs_c, d_c = _C.pack_q4x4(rows.reshape(-1), n, k)
    np.testing.assert_array_equal(qs_c, qs)
    np.testing.assert_array_equal(d_c, d)
