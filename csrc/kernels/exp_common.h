// ek_exp: the float exponential of the attention softmax and SwiGLU kernels, spelled out so that every ISA computes
// it with the same operations in the same order and so gives the same bits (libm's expf differs between machines
// and has no vector form). Internal to csrc/kernels; not installed.
//
//   x  = clamp(x, -87, 88), NaN → -87      (2^n stays a normal float; exp(-87) ~ 1.6e-38 stands in for anything below)
//   n  = round_half_even(x * log2(e))
//   r  = fma(-n, ln2_lo, fma(-n, ln2_hi, x))        ln2_hi has 8 low zero bits, so n * ln2_hi is exact
//   p  = Horner with fma over the Taylor coefficients 1/7!, ..., 1/2!, 1, 1      |r| <= ln2 / 2: error ~ 1 ulp
//   exp(x) = p * 2^n                         (2^n built in the exponent bits)
#ifndef EDGEKIT_KERNELS_EXP_COMMON_H
#define EDGEKIT_KERNELS_EXP_COMMON_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define EK_EXP_LO (-87.0f)
#define EK_EXP_HI 88.0f
#define EK_EXP_LOG2E 1.44269502162933349609375f
#define EK_EXP_LN2_HI 0.693145751953125f
#define EK_EXP_LN2_LO 1.428606765330187045e-06f
#define EK_EXP_C7 (1.0f / 5040.0f)
#define EK_EXP_C6 (1.0f / 720.0f)
#define EK_EXP_C5 (1.0f / 120.0f)
#define EK_EXP_C4 (1.0f / 24.0f)
#define EK_EXP_C3 (1.0f / 6.0f)
#define EK_EXP_C2 0.5f

// The scalar ek_exp: the reference, and the tails of the SIMD kernels.
static inline float ek_exp_scalar(float x) {
    x = x > EK_EXP_LO ? x : EK_EXP_LO;  // the order of maxps / minps: NaN → EK_EXP_LO
    x = x < EK_EXP_HI ? x : EK_EXP_HI;
    const float t = x * EK_EXP_LOG2E;
    const float n = nearbyintf(t);
    float r = fmaf(-n, EK_EXP_LN2_HI, x);
    r = fmaf(-n, EK_EXP_LN2_LO, r);
    float p = EK_EXP_C7;
    p = fmaf(p, r, EK_EXP_C6);
    p = fmaf(p, r, EK_EXP_C5);
    p = fmaf(p, r, EK_EXP_C4);
    p = fmaf(p, r, EK_EXP_C3);
    p = fmaf(p, r, EK_EXP_C2);
    p = fmaf(p, r, 1.0f);
    p = fmaf(p, r, 1.0f);
    const uint32_t bits = (uint32_t)((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif  // EDGEKIT_KERNELS_EXP_COMMON_H
