// Scalar reference of the fp16-row and Q8_0-row kernels (kernels.h): the summation order of the contract, spelled
// out once for both weight formats (a row's value c is all that differs), and the Q8_0 quantizer.
//
// Compiled with -ffp-contract=off like every scalar kernel; the fused multiply-adds the contract asks for are
// explicit std::fma calls, so this file gives exactly the bits the SIMD kernels give.
#include <assert.h>

#include <cmath>

#include "edgekit/kernels.h"

namespace {

// y[i, r] for rows [r0, r1) and tokens i < m; value(r, c) is row r's weight c as float32.
template <class Value>
void gemm_rows(Value value, const float* x, int64_t ldx, int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0,
               int64_t r1) {
    const int64_t k16 = k - k % 16;
    for (int64_t r = r0; r < r1; ++r) {
        for (int64_t i = 0; i < m; ++i) {
            const float* xi = x + i * ldx;
            float s[16] = {0};
            for (int64_t c = 0; c < k16; ++c) s[c % 16] = std::fma(value(r, c), xi[c], s[c % 16]);
            for (int l = 0; l < 8; ++l) s[l] += s[l + 8];  // the pairwise tree of the contract
            for (int l = 0; l < 4; ++l) s[l] += s[l + 4];
            for (int l = 0; l < 2; ++l) s[l] += s[l + 2];
            float tot = s[0] + s[1];
            for (int64_t c = k16; c < k; ++c) tot = std::fma(value(r, c), xi[c], tot);
            y[i * ldy + r] = tot;
        }
    }
}

}  // namespace

extern "C" void ek_gemm_f16_f32__scalar(const uint16_t* w, int64_t ldw, const float* x, int64_t ldx, int64_t m,
                                        int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1) {
    assert(k >= 0 && ldw >= k && ldx >= k && r0 <= r1);
    gemm_rows([=](int64_t r, int64_t c) { return ek_fp16_to_fp32(w[r * ldw + c]); }, x, ldx, m, k, y, ldy, r0, r1);
}

extern "C" void ek_gemm_q8_0_f32__scalar(const int8_t* q, const uint16_t* d, int64_t ldq, const float* x,
                                         int64_t ldx, int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0,
                                         int64_t r1) {
    assert(k % 32 == 0 && ldq % 32 == 0 && ldq >= k && ldx >= k && r0 <= r1);
    const int64_t ldd = ldq / 32;
    gemm_rows([=](int64_t r, int64_t c) { return (float)q[r * ldq + c] * ek_fp16_to_fp32(d[r * ldd + c / 32]); }, x,
              ldx, m, k, y, ldy, r0, r1);
}

extern "C" void ek_quantize_q8_0(const float* x, int64_t n, int64_t k, int8_t* q, uint16_t* d) {
    assert(k % 32 == 0);
    for (int64_t b = 0; b < n * (k / 32); ++b) {
        const float* xb = x + b * 32;
        float amax = 0.0f;
        for (int c = 0; c < 32; ++c) amax = std::fmax(amax, std::fabs(xb[c]));
        const float scale = amax / 127.0f;
        const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
        for (int c = 0; c < 32; ++c) {
            const float v = std::nearbyint(xb[c] * inv);  // round half to even, as numpy's rint
            q[b * 32 + c] = (int8_t)(v > 127.0f ? 127.0f : (v < -127.0f ? -127.0f : v));
        }
        d[b] = ek_fp32_to_fp16(scale);
    }
}
