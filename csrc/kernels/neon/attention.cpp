// Advanced SIMD (armv8.0) fused attention kernel, bit-identical to the scalar reference (kernels.h).
//
// The AVX2 file's plan on four-lane registers: scores take 8 keys (two registers) of up to four heads per pass over
// the head dimension, values 8 output dimensions of up to four heads per pass over the probabilities; the 16 running
// sums of the softmax denominator are four registers (lanes t mod 16 in 0..3, 4..7, 8..11, 12..15).
#include <arm_neon.h>
#include <assert.h>

#include <algorithm>
#include <vector>

#include "../attention_common.h"
#include "edgekit/kernels.h"
#include "exp_neon.h"

namespace {

inline float32x4_t load_f16(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }

template <int HB>
void scores(const float* q, int64_t hd, const uint16_t* kt, int64_t ldk, int64_t n, float scale, float* p) {
    int64_t t = 0;
    for (; t + 8 <= n; t += 8) {
        float32x4_t a[HB][2];
        for (int h = 0; h < HB; ++h) a[h][0] = a[h][1] = vdupq_n_f32(0.0f);
        for (int64_t c = 0; c < hd; ++c) {
            const float32x4_t k0 = load_f16(kt + c * ldk + t), k1 = load_f16(kt + c * ldk + t + 4);
            for (int h = 0; h < HB; ++h) {
                const float32x4_t qc = vdupq_n_f32(q[h * hd + c]);
                a[h][0] = vfmaq_f32(a[h][0], qc, k0);
                a[h][1] = vfmaq_f32(a[h][1], qc, k1);
            }
        }
        for (int h = 0; h < HB; ++h) {
            vst1q_f32(p + h * n + t, vmulq_n_f32(a[h][0], scale));
            vst1q_f32(p + h * n + t + 4, vmulq_n_f32(a[h][1], scale));
        }
    }
    // the last 1..7 keys through a zero-padded block (reading past the n-th key could leave the cache)
    if (t < n) {
        const int64_t rem = n - t;
        thread_local std::vector<uint16_t> pad;
        pad.assign((size_t)(hd * 8), 0);
        for (int64_t c = 0; c < hd; ++c)
            for (int64_t j = 0; j < rem; ++j) pad[c * 8 + j] = kt[c * ldk + t + j];
        float32x4_t a[HB][2];
        for (int h = 0; h < HB; ++h) a[h][0] = a[h][1] = vdupq_n_f32(0.0f);
        for (int64_t c = 0; c < hd; ++c) {
            const float32x4_t k0 = load_f16(pad.data() + c * 8), k1 = load_f16(pad.data() + c * 8 + 4);
            for (int h = 0; h < HB; ++h) {
                const float32x4_t qc = vdupq_n_f32(q[h * hd + c]);
                a[h][0] = vfmaq_f32(a[h][0], qc, k0);
                a[h][1] = vfmaq_f32(a[h][1], qc, k1);
            }
        }
        for (int h = 0; h < HB; ++h) {
            float tmp[8];
            vst1q_f32(tmp, vmulq_n_f32(a[h][0], scale));
            vst1q_f32(tmp + 4, vmulq_n_f32(a[h][1], scale));
            std::copy(tmp, tmp + rem, p + h * n + t);
        }
    }
}

void softmax(float* p, int64_t n) {
    const int64_t n4 = n - n % 4, n16 = n - n % 16;
    float32x4_t mv = vdupq_n_f32(p[0]);
    for (int64_t t = 0; t < n4; t += 4) mv = vmaxq_f32(mv, vld1q_f32(p + t));
    float mx = vmaxvq_f32(mv);
    for (int64_t t = n4; t < n; ++t) mx = p[t] > mx ? p[t] : mx;
    const float32x4_t m = vdupq_n_f32(mx);
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = s0, s2 = s0, s3 = s0;
    int64_t t = 0;
    for (; t < n16; t += 16) {
        const float32x4_t e0 = ek_exp_neon(vsubq_f32(vld1q_f32(p + t), m));
        const float32x4_t e1 = ek_exp_neon(vsubq_f32(vld1q_f32(p + t + 4), m));
        const float32x4_t e2 = ek_exp_neon(vsubq_f32(vld1q_f32(p + t + 8), m));
        const float32x4_t e3 = ek_exp_neon(vsubq_f32(vld1q_f32(p + t + 12), m));
        vst1q_f32(p + t, e0);
        vst1q_f32(p + t + 4, e1);
        vst1q_f32(p + t + 8, e2);
        vst1q_f32(p + t + 12, e3);
        s0 = vaddq_f32(s0, e0);
        s1 = vaddq_f32(s1, e1);
        s2 = vaddq_f32(s2, e2);
        s3 = vaddq_f32(s3, e3);
    }
    const float32x4_t s4 = vaddq_f32(vaddq_f32(s0, s2), vaddq_f32(s1, s3));
    const float32x2_t h2 = vadd_f32(vget_low_f32(s4), vget_high_f32(s4));
    float tot = vget_lane_f32(h2, 0) + vget_lane_f32(h2, 1);
    for (; t < n; ++t) tot += (p[t] = ek_exp_scalar(p[t] - mx));
    const float inv = 1.0f / tot;
    for (t = 0; t < n4; t += 4) vst1q_f32(p + t, vmulq_n_f32(vld1q_f32(p + t), inv));
    for (; t < n; ++t) p[t] *= inv;
}

template <int HB>
void values(const float* p, int64_t n, const uint16_t* v, int64_t ldv, int64_t hd, float* out) {
    int64_t c = 0;
    for (; c + 8 <= hd; c += 8) {
        float32x4_t a[HB][2];
        for (int h = 0; h < HB; ++h) a[h][0] = a[h][1] = vdupq_n_f32(0.0f);
        for (int64_t t = 0; t < n; ++t) {
            const float32x4_t v0 = load_f16(v + t * ldv + c), v1 = load_f16(v + t * ldv + c + 4);
            for (int h = 0; h < HB; ++h) {
                const float32x4_t pt = vdupq_n_f32(p[h * n + t]);
                a[h][0] = vfmaq_f32(a[h][0], pt, v0);
                a[h][1] = vfmaq_f32(a[h][1], pt, v1);
            }
        }
        for (int h = 0; h < HB; ++h) {
            vst1q_f32(out + h * hd + c, a[h][0]);
            vst1q_f32(out + h * hd + c + 4, a[h][1]);
        }
    }
    ek_attn_values_tail(p, n, v, ldv, hd, c, HB, out);
}

template <int HB>
struct Heads {
    static void run(const float* q, int64_t hd, const uint16_t* kt, int64_t ldk, const uint16_t* v, int64_t ldv,
                    int64_t n, float scale, const float* bias, int64_t ldb, const int32_t* lens, float* p,
                    float* out) {
        scores<HB>(q, hd, kt, ldk, n, scale, p);
        ek_attn_add_bias(p, n, bias, ldb, HB, n);
        for (int h = 0; h < HB; ++h) {
            const int64_t len = lens ? lens[h] : n;
            softmax(p + h * n, len);
            ek_attn_zero_after(p + h * n, len, n);
        }
        values<HB>(p, n, v, ldv, hd, out);
    }
};

}  // namespace

extern "C" void ek_attn_f16_f32__neon(const float* q, int64_t g, int64_t hd, const uint16_t* kt, int64_t ldk,
                                      const uint16_t* v, int64_t ldv, int64_t n, float scale, const float* bias,
                                      int64_t ldb, const int32_t* lens, float* p, float* out, float* first) {
    assert(g >= 1 && hd >= 1 && n >= 1 && ldk >= n && ldv >= hd);
    ek_attn_head_blocks<Heads>(q, g, hd, kt, ldk, v, ldv, n, scale, bias, ldb, lens, p, out, first);
}
