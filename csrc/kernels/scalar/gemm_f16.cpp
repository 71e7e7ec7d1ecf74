// Scalar reference of the fp16-row kernels (kernels.h): the summation order of the contract, spelled out.
//
// Compiled with -ffp-contract=off like every scalar kernel; the fused multiply-adds the contract asks for are
// explicit std::fma calls, so this file gives exactly the bits the SIMD kernels give.
#include <assert.h>

#include <cmath>

#include "edgekit/kernels.h"

extern "C" void ek_gemm_f16_f32__scalar(const uint16_t* w, int64_t ldw, const float* x, int64_t ldx, int64_t m,
                                        int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1) {
    assert(k >= 0 && ldw >= k && ldx >= k && r0 <= r1);
    const int64_t k16 = k - k % 16;
    for (int64_t r = r0; r < r1; ++r) {
        const uint16_t* wr = w + r * ldw;
        for (int64_t i = 0; i < m; ++i) {
            const float* xi = x + i * ldx;
            float s[16] = {0};
            for (int64_t c = 0; c < k16; ++c) s[c % 16] = std::fma(ek_fp16_to_fp32(wr[c]), xi[c], s[c % 16]);
            for (int l = 0; l < 8; ++l) s[l] += s[l + 8];  // the pairwise tree of the contract
            for (int l = 0; l < 4; ++l) s[l] += s[l + 4];
            for (int l = 0; l < 2; ++l) s[l] += s[l + 2];
            float tot = s[0] + s[1];
            for (int64_t c = k16; c < k; ++c) tot = std::fma(ek_fp16_to_fp32(wr[c]), xi[c], tot);
            y[i * ldy + r] = tot;
        }
    }
}
