// ek_exp on four lanes (Advanced SIMD): the operations of exp_common.h in the same order, so the same bits.
#ifndef EDGEKIT_KERNELS_NEON_EXP_H
#define EDGEKIT_KERNELS_NEON_EXP_H

#include <arm_neon.h>

#include "../exp_common.h"

static inline float32x4_t ek_exp_neon(float32x4_t x) {
    x = vmaxnmq_f32(x, vdupq_n_f32(EK_EXP_LO));  // maxnm returns the number for NaN: NaN → EK_EXP_LO
    x = vminnmq_f32(x, vdupq_n_f32(EK_EXP_HI));
    const float32x4_t n = vrndnq_f32(vmulq_f32(x, vdupq_n_f32(EK_EXP_LOG2E)));
    const float32x4_t nn = vnegq_f32(n);
    float32x4_t r = vfmaq_f32(x, nn, vdupq_n_f32(EK_EXP_LN2_HI));
    r = vfmaq_f32(r, nn, vdupq_n_f32(EK_EXP_LN2_LO));
    float32x4_t p = vdupq_n_f32(EK_EXP_C7);
    p = vfmaq_f32(vdupq_n_f32(EK_EXP_C6), p, r);
    p = vfmaq_f32(vdupq_n_f32(EK_EXP_C5), p, r);
    p = vfmaq_f32(vdupq_n_f32(EK_EXP_C4), p, r);
    p = vfmaq_f32(vdupq_n_f32(EK_EXP_C3), p, r);
    p = vfmaq_f32(vdupq_n_f32(EK_EXP_C2), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    const int32x4_t bits = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(p, vreinterpretq_f32_s32(bits));
}

#endif  // EDGEKIT_KERNELS_NEON_EXP_H
