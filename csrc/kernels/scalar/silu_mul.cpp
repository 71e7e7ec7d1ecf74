// Scalar reference of the SwiGLU kernel (kernels.h gives the contract): silu_mul_common.h's loop over the whole row.
//
// Compiled with -ffp-contract=off like every scalar kernel; ek_exp is exp_common.h's, so this file gives exactly the
// bits the SIMD kernels give.
#include "../silu_mul_common.h"
#include "edgekit/kernels.h"

extern "C" void ek_silu_mul_f32__scalar(float* g, const float* u, int64_t n) { ek_silu_mul_tail(g, u, 0, n); }
