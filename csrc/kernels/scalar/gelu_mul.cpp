// Scalar reference of the gated-GELU kernel (kernels.h gives the contract): gelu_mul_common.h's loop over the row.
//
// Compiled with -ffp-contract=off like every scalar kernel, so the products and sums are rounded one at a time as in
// the SIMD kernels.
#include "../gelu_mul_common.h"
#include "edgekit/kernels.h"

extern "C" void ek_gelu_mul_f32__scalar(float* g, const float* u, int64_t n) { ek_gelu_mul_tail(g, u, 0, n); }
