// Scalar reference of the integer Q8_0 head kernel (kernels.h: ek_gemm_q8_0_q8b): eight exact int32 lane sums per
// block of 32, added in float lane by lane with one fused multiply-add per lane and block, then the 8-4-2 tree.
//
// Compiled with -ffp-contract=off like every scalar kernel; the fused multiply-adds of the contract are explicit
// std::fma calls, so this file gives exactly the bits the SIMD kernels give.
#include <assert.h>

#include <cmath>

#include "edgekit/kernels.h"

extern "C" void ek_gemm_q8_0_q8b__scalar(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq,
                                         const float* xs, int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0,
                                         int64_t r1) {
    assert(k % 32 == 0 && ldq % 32 == 0 && ldq >= k && r0 <= r1);
    const int64_t nb = k / 32, ldd = ldq / 32;
    for (int64_t r = r0; r < r1; ++r) {
        for (int64_t i = 0; i < m; ++i) {
            float acc[8] = {0};
            for (int64_t j = 0; j < nb; ++j) {
                const int8_t* w = q + r * ldq + 32 * j;
                const int8_t* x = xq + i * k + 32 * j;
                const float s = ek_fp16_to_fp32(d[r * ldd + j]) * xs[i * nb + j];
                for (int l = 0; l < 8; ++l) {
                    int32_t p = 0;
                    for (int c = 0; c < 4; ++c) p += (int32_t)w[4 * l + c] * (int32_t)x[4 * l + c];
                    acc[l] = std::fma((float)p, s, acc[l]);
                }
            }
            const float t0 = acc[0] + acc[4], t1 = acc[1] + acc[5], t2 = acc[2] + acc[6], t3 = acc[3] + acc[7];
            y[i * ldy + r] = (t0 + t2) + (t1 + t3);
        }
    }
}
