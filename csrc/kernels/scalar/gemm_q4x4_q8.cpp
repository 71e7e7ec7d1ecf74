// Scalar reference of the W4A8 matmul on the q4x4 layout (kernels.h has the exact formula).
//
// Every SIMD implementation is tested against this file: the per-block integer sums bit for bit, the float output
// within a relative tolerance (their block terms are added in another order). Compiled with -ffp-contract=off.
#include <assert.h>
#include <stdint.h>

#include "edgekit/kernels.h"

namespace {

// kBlockScales: xs holds one scale per (token, block) (ek_gemm_q4x4_q8b) instead of one per token.
template <bool kBlockScales>
void gemm(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m, float* y,
          int64_t ldy, int64_t t0, int64_t t1) {
    assert(w && w->k % EK_Q4_BLOCK == 0);
    (void)xbsum;  // the reference subtracts the offset from each code instead
    assert(0 <= t0 && t0 <= t1 && t1 <= (w->n + EK_Q4X4_ROWS - 1) / EK_Q4X4_ROWS);
    const int64_t nb = w->k / EK_Q4_BLOCK, ldb = ek_q4_ldb(w);
    const int half = EK_Q4_BLOCK / 2;
    for (int64_t i = 0; i < m; ++i) {
        const int8_t* x = xq + i * w->k;
        for (int64_t t = t0; t < t1; ++t) {
            for (int r = 0; r < EK_Q4X4_ROWS; ++r) {
                const int64_t n = t * EK_Q4X4_ROWS + r;
                if (n >= w->n) break;
                float acc = 0.0f;
                for (int64_t j = 0; j < nb; ++j) {
                    const uint8_t* q = w->qs + (t * ldb + j) * EK_Q4X4_TILE_QS_BYTES + r * half;
                    const int8_t* xb = x + j * EK_Q4_BLOCK;
                    int32_t dot = 0;
                    for (int b = 0; b < half; ++b) {
                        dot += ((int32_t)(q[b] & EK_Q4_LO_MASK) - EK_Q4_SYM_ZERO) * xb[b];           // code b
                        dot += ((int32_t)(q[b] >> EK_Q4_HI_SHIFT) - EK_Q4_SYM_ZERO) * xb[b + half];  // code b + 16
                    }
                    float d = ek_fp16_to_fp32(w->d[(t * ldb + j) * EK_Q4X4_ROWS + r]);
                    if (kBlockScales) d *= xs[i * nb + j];
                    acc += d * (float)dot;
                }
                y[i * ldy + n] = kBlockScales ? acc : acc * xs[i];
            }
        }
    }
}

}  // namespace

extern "C" void ek_gemm_q4x4_q8__scalar(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                        int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1) {
    gemm<false>(w, xq, xs, xbsum, m, y, ldy, t0, t1);
}

extern "C" void ek_gemm_q4x4_q8b__scalar(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                         int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1) {
    gemm<true>(w, xq, xs, xbsum, m, y, ldy, t0, t1);
}
