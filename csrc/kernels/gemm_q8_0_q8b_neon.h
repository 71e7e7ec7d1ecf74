// The integer Q8_0 head kernel's loops for Arm (kernels.h: ek_gemm_q8_0_q8b), shared by the plain NEON and the
// dot-product files, which differ only in how 16 bytes become four int32 lanes (Dot::lanes): vmull + two pairwise
// adds, or one sdot. Lane l of either is the sum of bytes 4l..4l+3, the contract's lanes; two vectors hold a block's
// eight, each with its own fma chain, so the result is the scalar's bits. Internal to csrc/kernels; include it from
// exactly one file per ISA.
#ifndef EDGEKIT_KERNELS_GEMM_Q8_0_Q8B_NEON_H
#define EDGEKIT_KERNELS_GEMM_Q8_0_Q8B_NEON_H

#include <arm_neon.h>
#include <assert.h>
#include <stdint.h>

#include "edgekit/kernels.h"

namespace ek_q8b_neon {

// ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)): the contract's tree over lanes 0-3 (lo) and 4-7 (hi)
inline float reduce8(float32x4_t lo, float32x4_t hi) {
    const float32x4_t s4 = vaddq_f32(lo, hi);
    const float32x2_t s2 = vadd_f32(vget_low_f32(s4), vget_high_f32(s4));
    return vget_lane_f32(s2, 0) + vget_lane_f32(s2, 1);
}

// Rows [r0, r1) for tokens i < m, one row at a time; the token loop sits inside, so a row (ldq bytes) stays in L1
// while every token meets it.
template <class Dot>
void gemm(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq, const float* xs, int64_t m, int64_t k,
          float* y, int64_t ldy, int64_t r0, int64_t r1) {
    assert(k % 32 == 0 && ldq % 32 == 0 && ldq >= k && r0 <= r1);
    const int64_t nb = k / 32, ldd = ldq / 32;
    for (int64_t r = r0; r < r1; ++r) {
        const int8_t* w = q + r * ldq;
        for (int64_t i = 0; i < m; ++i) {
            const int8_t* x = xq + i * k;
            float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(0.0f);
            for (int64_t j = 0; j < nb; ++j) {
                const float32x4_t s = vdupq_n_f32(ek_fp16_to_fp32(d[r * ldd + j]) * xs[i * nb + j]);
                const int32x4_t p0 = Dot::lanes(vld1q_s8(w + 32 * j), vld1q_s8(x + 32 * j));
                const int32x4_t p1 = Dot::lanes(vld1q_s8(w + 32 * j + 16), vld1q_s8(x + 32 * j + 16));
                lo = vfmaq_f32(lo, vcvtq_f32_s32(p0), s);
                hi = vfmaq_f32(hi, vcvtq_f32_s32(p1), s);
            }
            y[i * ldy + r] = reduce8(lo, hi);
        }
    }
}

}  // namespace ek_q8b_neon

#endif  // EDGEKIT_KERNELS_GEMM_Q8_0_Q8B_NEON_H
