// Advanced SIMD (armv8.0) SwiGLU kernel, bit-identical to the scalar reference (kernels.h): four lanes of ek_exp per
// step, the remainder through the reference's own loop.
#include <arm_neon.h>

#include "../silu_mul_common.h"
#include "edgekit/kernels.h"
#include "exp_neon.h"

extern "C" void ek_silu_mul_f32__neon(float* g, const float* u, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) {
        const float32x4_t x = vld1q_f32(g + i);
        const float32x4_t d = vaddq_f32(vdupq_n_f32(1.0f), ek_exp_neon(vnegq_f32(x)));
        vst1q_f32(g + i, vmulq_f32(vdivq_f32(x, d), vld1q_f32(u + i)));
    }
    ek_silu_mul_tail(g, u, i, n);
}
