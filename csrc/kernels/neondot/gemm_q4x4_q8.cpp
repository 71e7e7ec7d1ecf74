// Armv8.2 dot-product (sdot, e.g. Cortex-A76 / Raspberry Pi 5, most arm64 phones) W4A8 matmul on the q4x4 layout
// (kernels.h has the exact formula; the scalar reference is csrc/kernels/scalar/gemm_q4x4_q8.cpp).
//
// Compiled with -march=armv8.2-a+dotprod for this file only (CMakeLists.txt); dispatch.cpp calls it only when
// HWCAP reports ASIMDDP. Same plan as the plain NEON kernel: a tile-block is unpacked once to signed codes -8..7
// (the products are (q - 8) * x directly, so the lane sums xbsum are unused) and shared by up to four tokens; sdot
// replaces the vmull/vmlal/vpaddl chain: two sdot per row and block, then two rounds of pairwise adds give the four
// rows' exact int32 block sums in one vector. The float steps are the scalar's: the output is its bits.
#include <arm_neon.h>
#include <stdint.h>

#include "../q4x4_neon_tiles.h"
#include "edgekit/kernels.h"

#if !defined(__ARM_FEATURE_DOTPROD)
#error "csrc/kernels/neondot needs -march=armv8.2-a+dotprod (set per file by CMakeLists.txt)"
#endif

namespace {

// The exact int32 block sums of the four rows of a tile-block against one token's block: lane r = row r.
struct DotSums {
    int32x4_t operator()(const TileBlock& tb, const int8_t* xb) const {
        const int8x16_t x0 = vld1q_s8(xb);
        const int8x16_t x1 = vld1q_s8(xb + EK_Q4_BLOCK / 2);
        const int32x4_t zero = vdupq_n_s32(0);
        int32x4_t s[EK_Q4X4_ROWS];
#pragma GCC unroll 4
        for (int r = 0; r < EK_Q4X4_ROWS; ++r) s[r] = vdotq_s32(vdotq_s32(zero, tb.lo[r], x0), tb.hi[r], x1);
        // [s0 s0 s1 s1] [s2 s2 s3 s3] → [row0 row1 row2 row3]
        return vpaddq_s32(vpaddq_s32(s[0], s[1]), vpaddq_s32(s[2], s[3]));
    }
};

}  // namespace

extern "C" void ek_gemm_q4x4_q8__neondot(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                         int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1) {
    (void)xbsum;  // signed codes carry the -8 offset themselves: no lane sums to take off
    gemm_q4x4_tiles<PerToken<DotSums>>(w, xq, xs, m, y, ldy, t0, t1);
}

extern "C" void ek_gemm_q4x4_q8b__neondot(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                          int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1) {
    (void)xbsum;  // signed codes carry the -8 offset themselves: no lane sums to take off
    gemm_q4x4_tiles<PerToken<DotSums>, true>(w, xq, xs, m, y, ldy, t0, t1);
}
