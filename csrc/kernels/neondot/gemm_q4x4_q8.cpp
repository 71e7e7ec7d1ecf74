// Armv8.2 dot-product (sdot, e.g. Cortex-A76 / Raspberry Pi 5, most arm64 phones) W4A8 matmul on the q4x4 layout
// (kernels.h has the exact formula; the scalar reference is csrc/kernels/scalar/gemm_q4x4_q8.cpp).
//
// Compiled with -march=armv8.2-a+dotprod for this file only (CMakeLists.txt); dispatch.cpp calls it only when
// HWCAP reports ASIMDDP. Same plan as the plain NEON kernel: a tile-block is unpacked once to signed codes -8..7
// (the products are (q - 8) * x directly, so the lane sums xbsum are unused) and shared by up to four tokens; sdot
// replaces the vmull/vmlal/vpaddl chain: two sdot per row and block, then two rounds of pairwise adds give the four
// rows' exact int32 block sums in one vector. Only the order of the float block terms differs from the scalar.
#include <arm_neon.h>
#include <assert.h>
#include <stdint.h>

#include "edgekit/kernels.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "csrc/kernels/neondot needs -march=armv8.2-a+dotprod (set per file by CMakeLists.txt)"
#endif

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

// The exact int32 block sums of the four rows of a tile-block against one token's block: lane r = row r.
inline int32x4_t tile_block_sums(const TileBlock& tb, const int8_t* xb) {
    const int8x16_t x0 = vld1q_s8(xb);
    const int8x16_t x1 = vld1q_s8(xb + EK_Q4_BLOCK / 2);
    const int32x4_t zero = vdupq_n_s32(0);
    int32x4_t s[EK_Q4X4_ROWS];
#pragma GCC unroll 4
    for (int r = 0; r < EK_Q4X4_ROWS; ++r) s[r] = vdotq_s32(vdotq_s32(zero, tb.lo[r], x0), tb.hi[r], x1);
    // [s0 s0 s1 s1] [s2 s2 s3 s3] → [row0 row1 row2 row3]
    return vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
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

// One tile against MT tokens (1..kTokens) starting at token i0.
template <int MT>
void tile_tokens(const ek_q4x4* w, const int8_t* xq, const float* xs, int64_t i0, float* y, int64_t ldy,
                 int64_t t) {
    const int64_t k = w->k;
    const int64_t nb = k / EK_Q4_BLOCK;
    const uint8_t* qs = w->qs + t * nb * EK_Q4X4_TILE_QS_BYTES;
    const uint16_t* d = w->d + t * nb * EK_Q4X4_ROWS;
    const int8_t* x = xq + i0 * k;

    float32x4_t acc[MT];
#pragma GCC unroll 4
    for (int u = 0; u < MT; ++u) acc[u] = vdupq_n_f32(0.0f);

    for (int64_t j = 0; j < nb; ++j) {
        const TileBlock tb = unpack_tile_block(qs + j * EK_Q4X4_TILE_QS_BYTES);
        const float32x4_t scale = vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(d + j * EK_Q4X4_ROWS)));
#pragma GCC unroll 4
        for (int u = 0; u < MT; ++u) {
            const int32x4_t s = tile_block_sums(tb, x + u * k + j * EK_Q4_BLOCK);
            acc[u] = vfmaq_f32(acc[u], scale, vcvtq_f32_s32(s));
        }
    }

    const int64_t n0 = t * EK_Q4X4_ROWS;
#pragma GCC unroll 4
    for (int u = 0; u < MT; ++u) store_tile(y + (i0 + u) * ldy, n0, w->n, acc[u], xs[i0 + u]);
}

}  // namespace

extern "C" void ek_gemm_q4x4_q8__neondot(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                         int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1) {
    (void)xbsum;  // signed codes carry the -8 offset themselves: no lane sums to take off
    assert(w && w->k % EK_Q4_BLOCK == 0);
    assert(0 <= t0 && t0 <= t1 && t1 <= (w->n + EK_Q4X4_ROWS - 1) / EK_Q4X4_ROWS);
    // Tiles outermost: a tile's weights (k / 2 bytes) stay in L1 while every token streams past them.
    for (int64_t t = t0; t < t1; ++t) {
        int64_t i = 0;
        for (; i + kTokens <= m; i += kTokens) tile_tokens<kTokens>(w, xq, xs, i, y, ldy, t);
        switch (m - i) {
            case 3: tile_tokens<3>(w, xq, xs, i, y, ldy, t); break;
            case 2: tile_tokens<2>(w, xq, xs, i, y, ldy, t); break;
            case 1: tile_tokens<1>(w, xq, xs, i, y, ldy, t); break;
            default: break;
        }
    }
}
