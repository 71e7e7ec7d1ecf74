"""Byte layouts of edgekit's quantized tensors: the one Python source of truth.

``csrc/include/edgekit/formats.h`` mirrors this module (block structs with ``static_assert``); when one changes the
other must too, and ``tests/unit/test_formats.py::test_constants_match_formats_h`` checks both against each other through
the native module (``edgekit._C.format_constants()``: the header's constants and block struct sizes).

Int4 weights, group-wise along K (the input dimension), ``group_size`` G (even; 32 by default, or K for
per-channel):

* codes ``q`` are unsigned nibbles 0..15;
* symmetric: ``w = (q - 8) * d`` with one fp16 scale ``d`` per group (for G = 32 this is GGUF's Q4_0 exactly);
* asymmetric: ``w = q * d + m`` with fp16 ``d`` and fp16 ``m`` per group (GGUF's Q4_1 for G = 32);
* packing: a row of K codes becomes K/2 bytes, group by group; inside a group of G codes, byte ``j`` holds code
  ``j`` in its low nibble and code ``j + G/2`` in its high nibble (GGUF's order, so a G = 32 group's 16 bytes are a
  Q4_0 block's ``qs`` verbatim, and SIMD kernels get each half-group from one load and one shift).

Int8 activations, per row (per token): ``amax = max|x|``; ``scale = amax / 127``; ``inv = 127 / amax`` (fp32, 0 when
amax is 0); ``q = clamp(rint(x * inv), -127, 127)`` with round-half-to-even, the rule numpy's ``rint``, torch's
``round`` and C's ``nearbyintf`` share. Int4 activations (W4A4 tokens) use the same rule with 7 in place of 127.

Q8_0 weights (the 8-bit tied embedding / LM head, ``lm_head_bits: 8``; GGUF's Q8_0): per block of 32 along K,
``d = amax / 127`` (fp32), ``q = clamp(rint(x * (1 / d)), -127, 127)`` (0 where d = 0, ggml's order of operations
with numpy's ties-to-even), stored as int8 codes and ``fp16(d)``; the value is ``q * fp16(d)``, exact in float32.
The native ``ek_quantize_q8_0`` is the same rule; a table already on this grid quantizes back to itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

Q4_0_BLOCK = 32  # GGUF Q4_0 / Q4_1 block size
Q4_0_BLOCK_BYTES = 2 + Q4_0_BLOCK // 2  # one GGUF Q4_0 block: the fp16 scale, then the codes (ek_block_q4_0)
Q8_ROW_QMAX = 127
Q4_ACT_QMAX = 7


@dataclass(frozen=True)
class Int4Layout:
    """Shape bookkeeping of one packed int4 weight matrix ``[N, K]``."""

    n: int
    k: int
    group_size: int
    symmetric: bool

    def __post_init__(self):
        if self.group_size % 2 or self.group_size <= 0:
            raise ValueError(f"group_size must be a positive even number, got {self.group_size}")
        if self.k % self.group_size:
            raise ValueError(f"K={self.k} is not a multiple of group_size={self.group_size}")

    @property
    def n_groups(self) -> int:
        return self.k // self.group_size

    @property
    def packed_shape(self) -> tuple[int, int]:
        return (self.n, self.k // 2)

    @property
    def scale_shape(self) -> tuple[int, int]:
        return (self.n, self.n_groups)

    def bits_per_weight(self) -> float:
        """Storage cost including the fp16 scale (and min for asymmetric)."""
        return 4.0 + (16.0 if self.symmetric else 32.0) / self.group_size


def pack_int4(codes: np.ndarray, group_size: int) -> np.ndarray:
    """Pack unsigned 4-bit codes ``[N, K]`` (values 0..15) into bytes ``[N, K/2]`` in the group-split order."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D [N, K], got shape {codes.shape}")
    if codes.size and (codes.min() < 0 or codes.max() > 15):
        raise ValueError("int4 codes must lie in 0..15")
    n, k = codes.shape
    Int4Layout(n, k, group_size, True)  # validates K and G
    g = codes.astype(np.uint8).reshape(n, k // group_size, group_size)
    half = group_size // 2
    packed = g[:, :, :half] | (g[:, :, half:] << 4)
    return packed.reshape(n, k // 2)


def unpack_int4(packed: np.ndarray, group_size: int) -> np.ndarray:
    """Inverse of :func:`pack_int4`: bytes ``[N, K/2]`` → codes ``[N, K]`` (uint8, 0..15)."""
    packed = np.asarray(packed, dtype=np.uint8)
    n, kh = packed.shape
    k = kh * 2
    Int4Layout(n, k, group_size, True)
    g = packed.reshape(n, k // group_size, group_size // 2)
    out = np.concatenate([g & 0x0F, g >> 4], axis=2)
    return out.reshape(n, k)


def dequantize_int4(packed, scales, group_size: int, mins=None) -> np.ndarray:
    """Float32 weights ``[N, K]`` from packed codes and fp16 scales (and fp16 mins for the asymmetric format)."""
    q = unpack_int4(packed, group_size).astype(np.float32)
    n, k = q.shape
    d = np.asarray(scales, dtype=np.float16).astype(np.float32)[:, :, None]
    q = q.reshape(n, k // group_size, group_size)
    if mins is None:
        w = (q - 8.0) * d
    else:
        w = q * d + np.asarray(mins, dtype=np.float16).astype(np.float32)[:, :, None]
    return w.reshape(n, k)


def quantize_rows_q8(x: np.ndarray, qmax: int = Q8_ROW_QMAX) -> tuple[np.ndarray, np.ndarray]:
    """Reference per-row symmetric activation quantizer (see the module docstring for the exact rule).

    Args:
        x: float32 ``[M, K]``.
        qmax: 127 for int8, 7 for int4 activations.

    Returns:
        ``(codes int8 [M, K], scales float32 [M])``.
    """
    x = np.asarray(x, dtype=np.float32)
    amax = np.abs(x).max(axis=1) if x.shape[1] else np.zeros(x.shape[0], np.float32)
    amax = amax.astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(amax > 0, np.float32(qmax) / amax, np.float32(0)).astype(np.float32)
    q = np.clip(np.rint(x * inv[:, None]), -qmax, qmax).astype(np.int8)
    return q, (amax / np.float32(qmax)).astype(np.float32)


def quantize_q8_0(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q8_0 weights (module docstring): float rows ``[N, K]``, K a multiple of 32 → ``(codes int8 [N, K],
    scales float16 [N, K / 32])``."""
    x = np.asarray(x, dtype=np.float32)
    n, k = x.shape
    if k % Q4_0_BLOCK:
        raise ValueError(f"Q8_0 needs rows that are a multiple of {Q4_0_BLOCK} values, got {k}")
    b = x.reshape(-1, Q4_0_BLOCK)
    d = (np.abs(b).max(axis=1) / np.float32(127)).astype(np.float32)
    with np.errstate(divide="ignore"):
        inv = np.where(d > 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    q = np.clip(np.rint(b * inv[:, None]), -127, 127).astype(np.int8)
    return q.reshape(n, k), d.astype(np.float16).reshape(n, k // Q4_0_BLOCK)


def dequantize_q8_0(q: np.ndarray, d: np.ndarray) -> np.ndarray:
    """The float32 values ``q * fp16(d)`` of Q8_0 rows (exact)."""
    n, k = q.shape
    scales = np.asarray(d, dtype=np.float16).astype(np.float32).reshape(n, k // Q4_0_BLOCK, 1)
    return (q.astype(np.float32).reshape(n, k // Q4_0_BLOCK, Q4_0_BLOCK) * scales).reshape(n, k)


def quantize_blocks_q8(x: np.ndarray, qmax: int = Q8_ROW_QMAX) -> tuple[np.ndarray, np.ndarray]:
    """Per-block activation quantizer: the per-row rule on every 32 consecutive values (GGUF Q8_0's blocking).

    Returns:
        ``(codes int8 [M, K], scales float32 [M, K/32])``.
    """
    x = np.asarray(x, dtype=np.float32)
    m, k = x.shape
    if k % Q4_0_BLOCK:
        raise ValueError(f"K={k} is not a multiple of {Q4_0_BLOCK}")
    q, s = quantize_rows_q8(x.reshape(-1, Q4_0_BLOCK), qmax)
    return q.reshape(m, k), s.reshape(m, k // Q4_0_BLOCK)


# ----------------------------------------------------------------------------------------------------------------
# Kernel layout "q4x4" (formats.h): symmetric int4 g32 rows padded to a multiple of four, grouped in tiles of four
# rows; tile t, block j holds the four rows' 16 qs bytes (64 bytes) and their four fp16 scales.
# ----------------------------------------------------------------------------------------------------------------
Q4X4_ROWS = 4
# Kernel layout "q4x16": the same codes and scales regrouped by 16 rows for the AVX-512 VNNI kernels; the native module
# builds it from q4x4 at load time (``PackedQ4.to_q4x16``), it is never stored.
Q4X16_ROWS = 16


def q4_0_rows(packed: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """GGUF Q4_0 bytes ``[N, K/32 * 18]`` (fp16 scale then 16 qs bytes per block) from group-32 packed codes."""
    packed = np.asarray(packed, dtype=np.uint8)
    n, kh = packed.shape
    nb = kh * 2 // Q4_0_BLOCK
    d = np.ascontiguousarray(np.asarray(scales, dtype=np.float16).reshape(n, nb)).view(np.uint8).reshape(n, nb, 2)
    return np.concatenate([d, packed.reshape(n, nb, Q4_0_BLOCK // 2)], axis=2).reshape(n, nb * Q4_0_BLOCK_BYTES)


def pack_q4x4(packed: np.ndarray, scales: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repack symmetric group-32 weights (``pack_int4`` bytes ``[N, K/2]``, fp16 scales ``[N, K/32]``) into the
    q4x4 arrays ``(qs uint8 [T * nb * 64], d uint16 [T * nb * 4])``; padding rows get codes 8 and scale 0."""
    packed = np.asarray(packed, dtype=np.uint8)
    n, kh = packed.shape
    nb = kh * 2 // Q4_0_BLOCK
    tiles = -(-n // Q4X4_ROWS)
    qs = np.full((tiles * Q4X4_ROWS, nb, Q4_0_BLOCK // 2), 0x88, dtype=np.uint8)
    qs[:n] = packed.reshape(n, nb, Q4_0_BLOCK // 2)
    d = np.zeros((tiles * Q4X4_ROWS, nb), dtype=np.uint16)
    d[:n] = np.asarray(scales, dtype=np.float16).reshape(n, nb).view(np.uint16)
    qs = qs.reshape(tiles, Q4X4_ROWS, nb, -1).transpose(0, 2, 1, 3)  # [tile, block, row, 16]
    d = d.reshape(tiles, Q4X4_ROWS, nb).transpose(0, 2, 1)
    return np.ascontiguousarray(qs).reshape(-1), np.ascontiguousarray(d).reshape(-1)


def gemm_q4_q8_reference(packed: np.ndarray, scales: np.ndarray, xq: np.ndarray,
                         xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """numpy ground truth of the W4A8 matmul (kernels.h): returns ``(y float64 [M, N], block sums int64 [M, N, nb])``
    where the block sums are the exact integers ``sum (q - 8) * xq`` every kernel must reproduce.

    ``xs`` is ``[M]`` (per-token scales, ``ek_gemm_q4x4_q8``) or ``[M, K/32]`` (per-block, ``ek_gemm_q4x4_q8b``)."""
    codes = unpack_int4(packed, Q4_0_BLOCK).astype(np.int64) - 8
    n, k = codes.shape
    nb = k // Q4_0_BLOCK
    xq = np.asarray(xq, dtype=np.int64)
    blocks = np.einsum("nbc,mbc->mnb", codes.reshape(n, nb, Q4_0_BLOCK), xq.reshape(-1, nb, Q4_0_BLOCK))
    d = np.asarray(scales, dtype=np.float16).astype(np.float64).reshape(n, nb)
    xs = np.asarray(xs, dtype=np.float64)
    if xs.ndim == 2:
        return (blocks * d[None] * xs[:, None, :]).sum(-1), blocks
    return (blocks * d[None]).sum(-1) * xs[:, None], blocks
