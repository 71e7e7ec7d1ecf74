// Advanced SIMD (armv8.0 aarch64) per-row activation quantizer, bit-identical to ek_quant_row_q8__scalar.
//
// No flags beyond the aarch64 baseline. Exactness, rule by rule (formats.h):
//   amax   max is order-independent; fmax propagates NaN, and a NaN row reports the reference's own NAN (not
//          whatever NaN the vector max produced) because the scalar tail helper decides the final value.
//   code   x * inv is one IEEE multiply (vmulq, never fused); fcvtns (vcvtnq_s32_f32) rounds half to even like
//          nearbyintf in the default rounding mode, maps NaN to 0 like the reference and saturates ±inf, and the
//          clamp to ±qmax then happens on integers, which gives the same code as clamping the rounded float.
//   scale  amax / qmax is the same scalar division as the reference.
#include <arm_neon.h>
#include <assert.h>
#include <math.h>
#include <stdint.h>

#include "../quant_row_q8_common.h"
#include "edgekit/kernels.h"

namespace {

// max |x| over one row (NaN anywhere → the reference's NAN).
float row_amax_neon(const float* x, int64_t k) {
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    float32x4_t acc2 = vdupq_n_f32(0.0f), acc3 = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        // four independent chains hide fmax latency
        acc0 = vmaxq_f32(acc0, vabsq_f32(vld1q_f32(x + i)));
        acc1 = vmaxq_f32(acc1, vabsq_f32(vld1q_f32(x + i + 4)));
        acc2 = vmaxq_f32(acc2, vabsq_f32(vld1q_f32(x + i + 8)));
        acc3 = vmaxq_f32(acc3, vabsq_f32(vld1q_f32(x + i + 12)));
    }
    for (; i + 4 <= k; i += 4) acc0 = vmaxq_f32(acc0, vabsq_f32(vld1q_f32(x + i)));
    // fmax / fmaxv return NaN as soon as one operand is NaN
    const float vmax = vmaxvq_f32(vmaxq_f32(vmaxq_f32(acc0, acc1), vmaxq_f32(acc2, acc3)));
    const bool saw_nan = vmax != vmax;
    return ek_q8_amax_from(x, i, k, saw_nan ? 0.0f : vmax, saw_nan);
}

// 4 floats → 4 int32 codes in -qmax..qmax.
inline int32x4_t codes4(float32x4_t x, float32x4_t inv, int32x4_t lo, int32x4_t hi) {
    const int32x4_t r = vcvtnq_s32_f32(vmulq_f32(x, inv));  // round half to even, NaN → 0, saturating
    return vminq_s32(vmaxq_s32(r, lo), hi);
}

// 8 int32 codes (|c| <= 127) → 8 int8: two plain narrowing moves, no saturation needed.
inline int8x8_t narrow8(int32x4_t a, int32x4_t b) { return vmovn_s16(vcombine_s16(vmovn_s32(a), vmovn_s32(b))); }

}  // namespace

extern "C" void ek_quant_row_q8__neon(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales) {
    assert(m >= 0 && k >= 0);
    assert(qmax >= 1 && qmax <= 127);
    assert((x && q && scales) || m == 0);

    const float fqmax = (float)qmax;
    const int32x4_t hi = vdupq_n_s32(qmax);
    const int32x4_t lo = vdupq_n_s32(-qmax);

    for (int64_t r = 0; r < m; ++r) {
        const float* xr = x + r * k;
        int8_t* qr = q + r * k;

        const float amax = row_amax_neon(xr, k);
        const float inv_s = ek_q8_inv(amax, qmax);
        const float32x4_t inv = vdupq_n_f32(inv_s);

        int64_t i = 0;
        for (; i + 16 <= k; i += 16) {
            const int32x4_t a = codes4(vld1q_f32(xr + i), inv, lo, hi);
            const int32x4_t b = codes4(vld1q_f32(xr + i + 4), inv, lo, hi);
            const int32x4_t c = codes4(vld1q_f32(xr + i + 8), inv, lo, hi);
            const int32x4_t d = codes4(vld1q_f32(xr + i + 12), inv, lo, hi);
            vst1q_s8(qr + i, vcombine_s8(narrow8(a, b), narrow8(c, d)));
        }
        for (; i + 8 <= k; i += 8) {
            const int32x4_t a = codes4(vld1q_f32(xr + i), inv, lo, hi);
            const int32x4_t b = codes4(vld1q_f32(xr + i + 4), inv, lo, hi);
            vst1_s8(qr + i, narrow8(a, b));
        }
        for (; i < k; ++i) qr[i] = ek_q8_code(xr[i], inv_s, fqmax);

        scales[r] = amax / fqmax;
    }
}
