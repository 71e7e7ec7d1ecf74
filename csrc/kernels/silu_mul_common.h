// The SwiGLU kernels' scalar loop, shared by every ISA (kernels.h gives the contract): the reference itself, and the
// tail each SIMD kernel finishes a row with. Internal to csrc/kernels; not installed.
#ifndef EDGEKIT_KERNELS_SILU_MUL_COMMON_H
#define EDGEKIT_KERNELS_SILU_MUL_COMMON_H

#include <stdint.h>

#include "exp_common.h"

// g[i] = g[i] / (1 + ek_exp(-g[i])) * u[i] for i in [from, n): the SwiGLU contract, one element at a time.
static inline void ek_silu_mul_tail(float* g, const float* u, int64_t from, int64_t n) {
    for (int64_t i = from; i < n; ++i) {
        const float d = 1.0f + ek_exp_scalar(-g[i]);
        const float s = g[i] / d;
        g[i] = s * u[i];
    }
}

#endif  // EDGEKIT_KERNELS_SILU_MUL_COMMON_H
