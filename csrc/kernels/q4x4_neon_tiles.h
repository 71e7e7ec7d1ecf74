// The tile/token driver shared by the Arm W4A8 kernels (csrc/kernels/neon, neondot, neoni8mm).
//
// A q4x4 tile-block (one 64-byte line: a block of four rows) is unpacked once to signed codes -8..7 and reused by up
// to four tokens; tiles are the outer loop, so a tile's weights stay in L1 while every token streams past them.
// The including file supplies Kernel: Kernel::Block, the unpacked tile-block in whatever register layout its
// instructions want, Kernel::unpack(qs) and Kernel::sums<MT>(block, x, k, s), the four rows' exact int32 block sums
// against MT consecutive tokens (s[u] lane r = row r of token u; x = token 0's block, token u at x + u * k).
// ISAs that go one token at a time wrap a per-token functor in PerToken. The float steps are all here, and they
// are the scalar reference's, lane by lane (lane r = row r): acc += (d * xs_block) * float(dot) for blocks j
// ascending, a multiply then an add (no fusing: -ffp-contract=off and no vfma), then y = acc * xs. So every Arm
// kernel gives the scalar's output bits, not only its integer sums. Everything has internal linkage, so each file compiles it with its own -march
// flags. Internal to csrc/kernels.
#ifndef EDGEKIT_KERNELS_Q4X4_NEON_TILES_H
#define EDGEKIT_KERNELS_Q4X4_NEON_TILES_H

#include <arm_neon.h>
#include <assert.h>
#include <stdint.h>

#include "edgekit/kernels.h"

namespace {

constexpr int kTokens = 4;  // tokens sharing one unpacked tile-block

// The four rows of one tile-block as signed codes: lo[r] = codes 0..15 of row r, hi[r] = codes 16..31.
struct TileBlock {
    int8x16_t lo[EK_Q4X4_ROWS];
    int8x16_t hi[EK_Q4X4_ROWS];
};

inline TileBlock unpack_tile_block(const uint8_t* qs) {
    const uint8x16_t mask = vdupq_n_u8(EK_Q4_LO_MASK);
    const int8x16_t zero = vdupq_n_s8(EK_Q4_SYM_ZERO);
    TileBlock tb;
#pragma GCC unroll 4
    for (int r = 0; r < EK_Q4X4_ROWS; ++r) {
        const uint8x16_t v = vld1q_u8(qs + r * (EK_Q4_BLOCK / 2));
        // group-split nibbles: low nibble = code b, high nibble = code b + 16 (formats.h)
        tb.lo[r] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, mask)), zero);
        tb.hi[r] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, EK_Q4_HI_SHIFT)), zero);
    }
    return tb;
}

// y[i, 4t .. 4t+3] = acc * xs[i], writing only the rows below n (the last tile may be padding).
inline void store_tile(float* yrow, int64_t n0, int64_t n, float32x4_t acc, float xs) {
    const float32x4_t v = vmulq_n_f32(acc, xs);
    if (n0 + EK_Q4X4_ROWS <= n) {
        vst1q_f32(yrow + n0, v);
        return;
    }
    float lanes[EK_Q4X4_ROWS];
    vst1q_f32(lanes, v);
    for (int r = 0; n0 + r < n; ++r) yrow[n0 + r] = lanes[r];
}

// Kernel for ISAs whose sums go one token at a time over a TileBlock: RowSums()(tb, xb) gives one token's four rows.
template <class RowSums>
struct PerToken {
    using Block = TileBlock;
    static Block unpack(const uint8_t* qs) { return unpack_tile_block(qs); }
    template <int MT>
    static void sums(const Block& tb, const int8_t* x, int64_t k, int32x4_t* s) {
#pragma GCC unroll 4
        for (int u = 0; u < MT; ++u) s[u] = RowSums()(tb, x + u * k);
    }
};

// One tile against MT tokens (1..kTokens) starting at token i0. kBlockScales: xs holds one scale per (token, block)
// (ek_gemm_q4x4_q8b), folded into the weight scales per block; otherwise one per token, applied at the end.
template <int MT, class Kernel, bool kBlockScales>
void tile_tokens(const ek_q4x4* w, const int8_t* xq, const float* xs, int64_t i0, float* y, int64_t ldy,
                 int64_t t) {
    const int64_t k = w->k;
    const int64_t nb = k / EK_Q4_BLOCK;
    const uint8_t* qs = w->qs + t * ek_q4_ldb(w) * EK_Q4X4_TILE_QS_BYTES;
    const uint16_t* d = w->d + t * ek_q4_ldb(w) * EK_Q4X4_ROWS;
    const int8_t* x = xq + i0 * k;

    float32x4_t acc[MT];
#pragma GCC unroll 4
    for (int u = 0; u < MT; ++u) acc[u] = vdupq_n_f32(0.0f);

    for (int64_t j = 0; j < nb; ++j) {
        const typename Kernel::Block tb = Kernel::unpack(qs + j * EK_Q4X4_TILE_QS_BYTES);
        int32x4_t s[MT];
        Kernel::template sums<MT>(tb, x + j * EK_Q4_BLOCK, k, s);
        // four fp16 scales of this tile-block → fp32 (fcvtl is baseline on aarch64)
        const float32x4_t scale = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(d + j * EK_Q4X4_ROWS)));
#pragma GCC unroll 4
        for (int u = 0; u < MT; ++u) {
            const float32x4_t dx = kBlockScales ? vmulq_n_f32(scale, xs[(i0 + u) * nb + j]) : scale;
            // the scalar's acc += d * (float)dot, rounded twice: a fused multiply-add would change the bits
            acc[u] = vaddq_f32(acc[u], vmulq_f32(dx, vcvtq_f32_s32(s[u])));
        }
    }

    const int64_t n0 = t * EK_Q4X4_ROWS;
#pragma GCC unroll 4
    for (int u = 0; u < MT; ++u) store_tile(y + (i0 + u) * ldy, n0, w->n, acc[u], kBlockScales ? 1.0f : xs[i0 + u]);
}

// The whole kernel (kernels.h's contract) over tiles [t0, t1) for a given Kernel.
template <class Kernel, bool kBlockScales = false>
void gemm_q4x4_tiles(const ek_q4x4* w, const int8_t* xq, const float* xs, int64_t m, float* y, int64_t ldy,
                     int64_t t0, int64_t t1) {
    assert(w && w->k % EK_Q4_BLOCK == 0);
    assert(0 <= t0 && t0 <= t1 && t1 <= (w->n + EK_Q4X4_ROWS - 1) / EK_Q4X4_ROWS);
    for (int64_t t = t0; t < t1; ++t) {
        int64_t i = 0;
        for (; i + kTokens <= m; i += kTokens) tile_tokens<kTokens, Kernel, kBlockScales>(w, xq, xs, i, y, ldy, t);
        switch (m - i) {
            case 3: tile_tokens<3, Kernel, kBlockScales>(w, xq, xs, i, y, ldy, t); break;
            case 2: tile_tokens<2, Kernel, kBlockScales>(w, xq, xs, i, y, ldy, t); break;
            case 1: tile_tokens<1, Kernel, kBlockScales>(w, xq, xs, i, y, ldy, t); break;
            default: break;
        }
    }
}

}  // namespace

#endif  // EDGEKIT_KERNELS_Q4X4_NEON_TILES_H
