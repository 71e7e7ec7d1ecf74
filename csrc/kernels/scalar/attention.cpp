// Scalar reference of the fused attention kernel (kernels.h gives the contract).
//
// Compiled with -ffp-contract=off like every scalar kernel; the contract's fused multiply-adds are explicit fmaf
// calls and ek_exp is exp_common.h's, so this file gives exactly the bits the SIMD kernels give.
#include <assert.h>
#include <math.h>

#include "../attention_common.h"
#include "edgekit/kernels.h"

namespace {

// sum of e[0..n) in gemm_f16_f32's order: 16 running sums over t mod 16, their pairwise tree, then the tail
float sum16(const float* e, int64_t n) {
    const int64_t n16 = n - n % 16;
    float s[16] = {0};
    for (int64_t t = 0; t < n16; ++t) s[t % 16] += e[t];
    for (int l = 0; l < 8; ++l) s[l] += s[l + 8];
    for (int l = 0; l < 4; ++l) s[l] += s[l + 4];
    for (int l = 0; l < 2; ++l) s[l] += s[l + 2];
    float tot = s[0] + s[1];
    for (int64_t t = n16; t < n; ++t) tot += e[t];
    return tot;
}

}  // namespace

extern "C" void ek_attn_f16_f32__scalar(const float* q, int64_t g, int64_t hd, const uint16_t* kt, int64_t ldk,
                                        const uint16_t* v, int64_t ldv, int64_t n, float scale,
                                        const float* bias, int64_t ldb, const int32_t* lens, float* p,
                                        float* out, float* first) {
    assert(g >= 1 && hd >= 1 && n >= 1 && ldk >= n && ldv >= hd);
    for (int64_t h = 0; h < g; ++h) {
        const int64_t len = lens ? lens[h] : n;  // this row's keys (kernels.h)
        assert(len >= 1 && len <= n);
        const float* qh = q + h * hd;
        float* ph = p + h * n;
        for (int64_t t = 0; t < len; ++t) ph[t] = ek_attn_score(qh, hd, kt, ldk, t, scale);
        ek_attn_add_bias(ph, n, bias ? bias + h * ldb : nullptr, ldb, 1, len);
        float mx = ph[0];
        for (int64_t t = 1; t < len; ++t) mx = ph[t] > mx ? ph[t] : mx;
        for (int64_t t = 0; t < len; ++t) ph[t] = ek_exp_scalar(ph[t] - mx);
        const float inv = 1.0f / sum16(ph, len);
        for (int64_t t = 0; t < len; ++t) ph[t] *= inv;
        for (int64_t t = len; t < n; ++t) ph[t] = 0.0f;
        first[h] = ph[0];
        ek_attn_values_tail(ph, len, v, ldv, hd, 0, 1, out + h * hd);
    }
}
