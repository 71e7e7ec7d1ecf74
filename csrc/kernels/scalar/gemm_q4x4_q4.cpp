// Agile-Quant's packed multiplier for W4A4, portable C (SWAR: SIMD within a 32-bit register).
//
// The four weight codes of a tile at one position k (unsigned 0..15) are packed one per byte; one 32-bit multiply
// by the offset activation u = a + 8 (1..15) yields all four products (at most 225, so no byte carries into the
// next), and the masks 0x00FF00FF split them into 16-bit guard fields that accumulate without overflow for up to
// 2^8 positions before widening (32 here: one group). The offsets come back out exactly:
//   sum (q - 8) * a = sum q * u - 8 * sum q - 8 * sum a.
// Same contract as ek_gemm_q4x4_q8 (kernels.h) for activations in -7..7 (int4 tokens of the W4A4 mix).
#include <assert.h>
#include <stdint.h>

#include "edgekit/kernels.h"

extern "C" void ek_gemm_q4x4_q4__scalar(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                        int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1) {
    assert(w && w->k % EK_Q4_BLOCK == 0);
    (void)xbsum;
    const int64_t nb = w->k / EK_Q4_BLOCK, ldb = ek_q4_ldb(w);
    const int half = EK_Q4_BLOCK / 2;
    for (int64_t i = 0; i < m; ++i) {
        const int8_t* x = xq + i * w->k;
        for (int64_t t = t0; t < t1; ++t) {
            float acc[EK_Q4X4_ROWS] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int64_t j = 0; j < nb; ++j) {
                const uint8_t* q = w->qs + (t * ldb + j) * EK_Q4X4_TILE_QS_BYTES;
                const int8_t* xb = x + j * EK_Q4_BLOCK;
                uint32_t even = 0, odd = 0, qsum_even = 0, qsum_odd = 0;  // 16-bit fields: rows 0,2 and 1,3
                int32_t asum = 0;
                for (int c = 0; c < EK_Q4_BLOCK; ++c) {
                    const int b = c < half ? c : c - half;
                    const int shift = c < half ? 0 : EK_Q4_HI_SHIFT;
                    uint32_t packed = 0;  // code of row r in byte r
                    for (int r = 0; r < EK_Q4X4_ROWS; ++r)
                        packed |= (uint32_t)((q[r * half + b] >> shift) & EK_Q4_LO_MASK) << (8 * r);
                    assert(xb[c] >= -7 && xb[c] <= 7);
                    const uint32_t u = (uint32_t)(xb[c] + EK_Q4_SYM_ZERO);
                    const uint32_t p = packed * u;  // four products, one per byte
                    even += p & 0x00FF00FFu;
                    odd += (p >> 8) & 0x00FF00FFu;
                    qsum_even += packed & 0x00FF00FFu;
                    qsum_odd += (packed >> 8) & 0x00FF00FFu;
                    asum += xb[c];
                }
                const uint32_t s[EK_Q4X4_ROWS] = {even & 0xFFFF, odd & 0xFFFF, even >> 16, odd >> 16};
                const uint32_t qs_[EK_Q4X4_ROWS] = {qsum_even & 0xFFFF, qsum_odd & 0xFFFF, qsum_even >> 16,
                                                    qsum_odd >> 16};
                for (int r = 0; r < EK_Q4X4_ROWS; ++r) {
                    const int32_t dot = (int32_t)s[r] - EK_Q4_SYM_ZERO * (int32_t)qs_[r] - EK_Q4_SYM_ZERO * asum;
                    acc[r] += ek_fp16_to_fp32(w->d[(t * ldb + j) * EK_Q4X4_ROWS + r]) * (float)dot;
                }
            }
            for (int r = 0; r < EK_Q4X4_ROWS; ++r) {
                const int64_t n = t * EK_Q4X4_ROWS + r;
                if (n < w->n) y[i * ldy + n] = acc[r] * xs[i];
            }
        }
    }
}
