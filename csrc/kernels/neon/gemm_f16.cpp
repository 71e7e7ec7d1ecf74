// Advanced SIMD (armv8.0) fp16-row and Q8_0-row kernels, bit-identical to the scalar reference (kernels.h: order).
//
// The 16 running sums of the gemm contract are four 4-lane accumulators per output (lanes c mod 16 in 0..3, 4..7,
// 8..11, 12..15): a0 + a2 and a1 + a3 are the first level of the tree, their sum the second, the 64-bit halves the
// third. fcvtl converts four halves exactly; vfmaq is the fused multiply-add of the contract.
#include <arm_neon.h>
#include <assert.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "edgekit/kernels.h"

namespace {

inline float32x4_t load_f16(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

inline float reduce16(float32x4_t a0, float32x4_t a1, float32x4_t a2, float32x4_t a3) {
    const float32x4_t s4 = vaddq_f32(vaddq_f32(a0, a2), vaddq_f32(a1, a3));
    const float32x2_t s2 = vadd_f32(vget_low_f32(s4), vget_high_f32(s4));
    return vget_lane_f32(s2, 0) + vget_lane_f32(s2, 1);
}

float tail(const uint16_t* w, const float* x, int64_t k16, int64_t k, float tot) {
    for (int64_t c = k16; c < k; ++c) tot = std::fma(ek_fp16_to_fp32(w[c]), x[c], tot);
    return tot;
}

// One output over c < k16: `load(c)` gives four weights as floats (converted from fp16, or from a converted row).
template <typename Load>
float dot16(Load load, const float* x, int64_t k16) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t c = 0; c < k16; c += 16) {
        a0 = vfmaq_f32(a0, load(c), vld1q_f32(x + c));
        a1 = vfmaq_f32(a1, load(c + 4), vld1q_f32(x + c + 4));
        a2 = vfmaq_f32(a2, load(c + 8), vld1q_f32(x + c + 8));
        a3 = vfmaq_f32(a3, load(c + 12), vld1q_f32(x + c + 12));
    }
    return reduce16(a0, a1, a2, a3);
}

// Sixteen values of a Q8_0 row from c (a multiple of 16): float(code) * the block's scale, exact in float32.
inline void load16_q8(const int8_t* q, float scale, float32x4_t out[4]) {
    const int8x16_t v = vld1q_s8(q);
    const int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_s8(vget_high_s8(v));
    const float32x4_t s = vdupq_n_f32(scale);
    out[0] = vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), s);
    out[1] = vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo))), s);
    out[2] = vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), s);
    out[3] = vmulq_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi))), s);
}

}  // namespace

extern "C" void ek_gemm_q8_0_f32__neon(const int8_t* q, const uint16_t* d, int64_t ldq, const float* x, int64_t ldx,
                                       int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1) {
    assert(k % 32 == 0 && ldq % 32 == 0 && ldq >= k && ldx >= k && r0 <= r1);
    thread_local std::vector<float> buf;  // one row converted to fp32 (k is a multiple of 16: no tail)
    if ((int64_t)buf.size() < k) buf.resize((size_t)k);
    for (int64_t r = r0; r < r1; ++r) {
        float* wf = buf.data();
        for (int64_t c = 0; c < k; c += 16) {
            float32x4_t v[4];
            load16_q8(q + r * ldq + c, ek_fp16_to_fp32(d[r * (ldq / 32) + c / 32]), v);
            for (int l = 0; l < 4; ++l) vst1q_f32(wf + c + 4 * l, v[l]);
        }
        for (int64_t i = 0; i < m; ++i)
            y[i * ldy + r] = dot16([wf](int64_t c) { return vld1q_f32(wf + c); }, x + i * ldx, k);
    }
}

extern "C" void ek_gemm_f16_f32__neon(const uint16_t* w, int64_t ldw, const float* x, int64_t ldx, int64_t m,
                                      int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1) {
    assert(k >= 0 && ldw >= k && ldx >= k && r0 <= r1);
    const int64_t k16 = k - k % 16;
    if (m == 1) {
        for (int64_t r = r0; r < r1; ++r) {
            const uint16_t* wr = w + r * ldw;
            y[r] = tail(wr, x, k16, k, dot16([wr](int64_t c) { return load_f16(wr + c); }, x, k16));
        }
        return;
    }
    thread_local std::vector<float> buf;  // one row converted to fp32, reused by every token
    if ((int64_t)buf.size() < k16) buf.resize((size_t)k16);
    for (int64_t r = r0; r < r1; ++r) {
        const uint16_t* wr = w + r * ldw;
        float* wf = buf.data();
        for (int64_t c = 0; c < k16; c += 4) vst1q_f32(wf + c, load_f16(wr + c));
        for (int64_t i = 0; i < m; ++i) {
            const float* xi = x + i * ldx;
            y[i * ldy + r] = tail(wr, xi, k16, k, dot16([wf](int64_t c) { return vld1q_f32(wf + c); }, xi, k16));
        }
    }
}
