// Scalar reference of the W4A8 matmul on the q4x16 layout (kernels.h gives the exact contract), and the repacking
// from q4x4. Compiled with -ffp-contract=off; the contract's one fused multiply-add per block is an explicit fmaf,
// so the SIMD kernels equal this file bit for bit.
#include <assert.h>
#include <math.h>
#include <string.h>

#include "edgekit/kernels.h"

namespace {

// code c (0..31) of row r, block j, in a q4x16 group block
inline int code(const uint8_t* blk, int r, int c) {
    const int lo = c < 16 ? c : c - 16, l = lo / 4, b = lo % 4;
    const uint8_t byte = blk[l * 64 + r * 4 + b];
    return c < 16 ? (byte & EK_Q4_LO_MASK) : (byte >> EK_Q4_HI_SHIFT);
}

template <bool kBlockScales>
void gemm(const ek_q4x4* w, const int8_t* xq, const float* xs, int64_t m, float* y, int64_t ldy, int64_t t0,
          int64_t t1) {
    assert(w && w->k % EK_Q4_BLOCK == 0);
    assert(0 <= t0 && t0 <= t1 && t1 <= (w->n + EK_Q4X16_ROWS - 1) / EK_Q4X16_ROWS);
    const int64_t nb = w->k / EK_Q4_BLOCK, ldb = ek_q4_ldb(w);
    for (int64_t i = 0; i < m; ++i) {
        for (int64_t g = t0; g < t1; ++g) {
            for (int r = 0; r < EK_Q4X16_ROWS; ++r) {
                const int64_t row = g * EK_Q4X16_ROWS + r;
                if (row >= w->n) break;
                float acc = 0.0f;
                for (int64_t j = 0; j < nb; ++j) {
                    const uint8_t* blk = w->qs + (g * ldb + j) * EK_Q4X16_GROUP_QS_BYTES;
                    const int8_t* xb = xq + i * w->k + j * EK_Q4_BLOCK;
                    int32_t dot = 0;
                    for (int c = 0; c < EK_Q4_BLOCK; ++c) dot += (code(blk, r, c) - EK_Q4_SYM_ZERO) * xb[c];
                    float d = ek_fp16_to_fp32(w->d[(g * ldb + j) * EK_Q4X16_ROWS + r]);
                    if (kBlockScales) d = d * xs[i * nb + j];
                    acc = fmaf((float)dot, d, acc);
                }
                y[i * ldy + row] = kBlockScales ? acc : acc * xs[i];
            }
        }
    }
}

}  // namespace

extern "C" void ek_gemm_q4x16_q8__scalar(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                         int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1) {
    (void)xbsum;  // the reference subtracts the offset from each code instead
    gemm<false>(w, xq, xs, m, y, ldy, t0, t1);
}

extern "C" void ek_gemm_q4x16_q8b__scalar(const ek_q4x4* w, const int8_t* xq, const float* xs,
                                          const int32_t* xbsum, int64_t m, float* y, int64_t ldy, int64_t t0,
                                          int64_t t1) {
    (void)xbsum;
    gemm<true>(w, xq, xs, m, y, ldy, t0, t1);
}

extern "C" void ek_pack_q4x16(const ek_q4x4* w, uint8_t* qs, uint16_t* d) {
    const int64_t nb = w->k / EK_Q4_BLOCK, groups = (w->n + EK_Q4X16_ROWS - 1) / EK_Q4X16_ROWS;
    const uint8_t pad = (uint8_t)(EK_Q4_SYM_ZERO | (EK_Q4_SYM_ZERO << EK_Q4_HI_SHIFT));
    for (int64_t g = 0; g < groups; ++g) {
        for (int64_t j = 0; j < nb; ++j) {
            uint8_t* out = qs + (g * nb + j) * EK_Q4X16_GROUP_QS_BYTES;
            uint16_t* dout = d + (g * nb + j) * EK_Q4X16_ROWS;
            for (int r = 0; r < EK_Q4X16_ROWS; ++r) {
                const int64_t row = g * EK_Q4X16_ROWS + r;
                if (row >= w->n) {
                    for (int l = 0; l < 4; ++l) memset(out + l * 64 + r * 4, pad, 4);
                    dout[r] = 0;
                    continue;
                }
                const int64_t t = row / EK_Q4X4_ROWS, rr = row % EK_Q4X4_ROWS;
                // q4x4: byte b of the row's 16 holds codes b (low) and 16 + b (high), the nibble pairing kept here
                const uint8_t* src = w->qs + (t * nb + j) * EK_Q4X4_TILE_QS_BYTES + rr * (EK_Q4_BLOCK / 2);
                for (int l = 0; l < 4; ++l) memcpy(out + l * 64 + r * 4, src + 4 * l, 4);
                dout[r] = w->d[(t * nb + j) * EK_Q4X4_ROWS + rr];
            }
        }
    }
}
