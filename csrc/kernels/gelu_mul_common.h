// The gated-GELU kernels' scalar loop (T5 v1.1's FFN: gelu_pytorch_tanh(g) * u), shared by every ISA (kernels.h gives
// the contract): the reference itself, and the tail each SIMD kernel finishes a row with. Internal to csrc/kernels.
//
// 0.5 * (1 + tanh(a)) = 1 / (1 + exp(-2a)), so gelu_tanh(g) = g / (1 + ek_exp(-z)) with z = 2a =
// g * (C1 + C2 * g * g): SwiGLU's loop with another argument of the exponential. Separate multiplies and adds, no
// fma, so that every ISA rounds each step the same way.
#ifndef EDGEKIT_KERNELS_GELU_MUL_COMMON_H
#define EDGEKIT_KERNELS_GELU_MUL_COMMON_H

#include <stdint.h>

#include "exp_common.h"

#define EK_GELU_C1 1.5957691216057308f   // 2 * sqrt(2 / pi)
#define EK_GELU_C2 0.07135481627159119f  // 2 * sqrt(2 / pi) * 0.044715

// g[i] = g[i] / (1 + ek_exp(-z)) * u[i], z = g[i] * (C1 + C2 * (g[i] * g[i])), for i in [from, n).
static inline void ek_gelu_mul_tail(float* g, const float* u, int64_t from, int64_t n) {
    for (int64_t i = from; i < n; ++i) {
        const float x = g[i];
        const float w = EK_GELU_C2 * (x * x) + EK_GELU_C1;
        const float d = 1.0f + ek_exp_scalar(-(x * w));
        g[i] = x / d * u[i];
    }
}

#endif  // EDGEKIT_KERNELS_GELU_MUL_COMMON_H
