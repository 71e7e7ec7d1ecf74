// Shared scalar pieces of the per-row q8 quantizer, so that the SIMD kernels' tails and the scalar reference follow
// one definition of the rule (formats.h). Internal to csrc/kernels; not installed.
#ifndef EDGEKIT_KERNELS_QUANT_ROW_Q8_COMMON_H
#define EDGEKIT_KERNELS_QUANT_ROW_Q8_COMMON_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

// inv = qmax / amax in fp32, 0 when amax is 0 or NaN (numpy: where(amax > 0, qmax / amax, 0)).
static inline float ek_q8_inv(float amax, int qmax) {
    return amax > 0.0f ? (float)qmax / amax : 0.0f;
}

// One code: round half to even, NaN (0 * inf, inf * 0) → 0, then clamp to ±qmax. The product is a separate
// statement so that no compiler may fuse it with anything.
static inline int8_t ek_q8_code(float x, float inv, float fqmax) {
    const float p = x * inv;
    float r = nearbyintf(p);
    if (r != r) r = 0.0f;  // NaN → 0, as numpy's cast does on x86
    if (r > fqmax) r = fqmax;
    if (r < -fqmax) r = -fqmax;
    return (int8_t)r;
}

// max |x[i]| for i in [from, k), continuing from a running amax; NaN anywhere makes the result NaN, as numpy's max
// does. The scalar reference runs it over the whole row, the SIMD kernels over their tails.
static inline float ek_q8_amax_from(const float* x, int64_t from, int64_t k, float amax, bool saw_nan) {
    for (int64_t i = from; i < k; ++i) {
        const float a = fabsf(x[i]);
        if (a > amax) {
            amax = a;
        } else if (a != a) {
            saw_nan = true;
        }
    }
    return saw_nan ? NAN : amax;
}

#endif  // EDGEKIT_KERNELS_QUANT_ROW_Q8_COMMON_H
