// Advanced SIMD (armv8.0, e.g. Cortex-A72 / Raspberry Pi 4) W4A8 matmul on the q4x4 layout (kernels.h has the
// exact formula; the scalar reference is csrc/kernels/scalar/gemm_q4x4_q8.cpp).
//
// Why this shape: one 64-byte q4x4 line holds one block of four rows, so a tile-block is unpacked once (nibbles →
// signed codes -8..7) and reused by up to four tokens; each token's 32 activation codes are loaded once per tile.
// Signed codes give sum((q - 8) * x) directly, so the lane sums xbsum (for kernels that multiply unsigned codes) are
// not needed, and the per-block integer sums are exact and bit-identical to the scalar's. Products are at most 8 * 128 = 1024 in magnitude, so
// four of them per int16 lane (vmull + 3 × vmlal) cannot overflow before the widening pairwise add.
// The float steps (q4x4_neon_tiles.h) are the scalar's, so the output is the scalar's bit for bit.
// No flags beyond the aarch64 baseline: dispatch.cpp uses it on any CPU with ASIMD.
#include <arm_neon.h>
#include <stdint.h>

#include "../q4x4_neon_tiles.h"
#include "edgekit/kernels.h"

namespace {

// int16x8 partial sums of one row-block: every lane holds four products, |lane| <= 4096.
inline int16x8_t row_block_dot(int8x16_t lo, int8x16_t hi, int8x16_t x0, int8x16_t x1) {
    int16x8_t p = vmull_s8(vget_low_s8(lo), vget_low_s8(x0));
    p = vmlal_high_s8(p, lo, x0);
    p = vmlal_s8(p, vget_low_s8(hi), vget_low_s8(x1));
    p = vmlal_high_s8(p, hi, x1);
    return p;
}

// The exact int32 block sums of the four rows of a tile-block against one token's block: lane r = row r.
struct NeonSums {
    int32x4_t operator()(const TileBlock& tb, const int8_t* xb) const {
        const int8x16_t x0 = vld1q_s8(xb);
        const int8x16_t x1 = vld1q_s8(xb + EK_Q4_BLOCK / 2);
        const int32x4_t s0 = vpaddlq_s16(row_block_dot(tb.lo[0], tb.hi[0], x0, x1));
        const int32x4_t s1 = vpaddlq_s16(row_block_dot(tb.lo[1], tb.hi[1], x0, x1));
        const int32x4_t s2 = vpaddlq_s16(row_block_dot(tb.lo[2], tb.hi[2], x0, x1));
        const int32x4_t s3 = vpaddlq_s16(row_block_dot(tb.lo[3], tb.hi[3], x0, x1));
        // two rounds of pairwise adds: [s0 s0 s1 s1] [s2 s2 s3 s3] → [row0 row1 row2 row3]
        return vpaddq_s32(vpaddq_s32(s0, s1), vpaddq_s32(s2, s3));
    }
};

}  // namespace

extern "C" void ek_gemm_q4x4_q8__neon(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                      int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1) {
    (void)xbsum;  // signed codes carry the -8 offset themselves: no lane sums to take off
    gemm_q4x4_tiles<PerToken<NeonSums>>(w, xq, xs, m, y, ldy, t0, t1);
}

extern "C" void ek_gemm_q4x4_q8b__neon(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                       int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1) {
    (void)xbsum;  // signed codes carry the -8 offset themselves: no lane sums to take off
    gemm_q4x4_tiles<PerToken<NeonSums>, true>(w, xq, xs, m, y, ldy, t0, t1);
}
