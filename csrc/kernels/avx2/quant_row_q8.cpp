// AVX2 per-row activation quantizer, bit-identical to ek_quant_row_q8__scalar.
//
// Compiled with -mavx2 -mfma -mf16c for this file only (CMakeLists.txt); dispatch.cpp calls it only when the CPU
// reports AVX2. Exactness: max is order-independent, the product x * inv is one IEEE multiply (no FMA anywhere),
// rounding is round-half-to-even like nearbyintf, and NaN products become 0 like the scalar rule.
#include <assert.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "../quant_row_q8_common.h"
#include "edgekit/kernels.h"

namespace {

// max |x| over one row (NaN anywhere → NaN).
float row_amax_avx2(const float* x, int64_t k) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
    __m256 nan = _mm256_setzero_ps();  // all-ones lanes where a NaN was seen
    int64_t i = 0;
    for (; i + 32 <= k; i += 32) {
        // |x| by clearing the sign bit
        const __m256 a0 = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i));
        const __m256 a1 = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i + 8));
        const __m256 a2 = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i + 16));
        const __m256 a3 = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i + 24));
        // max_ps(a, acc) returns acc when a is NaN, so NaNs are tracked on the side
        acc0 = _mm256_max_ps(a0, acc0);
        acc1 = _mm256_max_ps(a1, acc1);
        acc2 = _mm256_max_ps(a2, acc2);
        acc3 = _mm256_max_ps(a3, acc3);
        const __m256 n01 = _mm256_or_ps(_mm256_cmp_ps(a0, a0, _CMP_UNORD_Q), _mm256_cmp_ps(a1, a1, _CMP_UNORD_Q));
        const __m256 n23 = _mm256_or_ps(_mm256_cmp_ps(a2, a2, _CMP_UNORD_Q), _mm256_cmp_ps(a3, a3, _CMP_UNORD_Q));
        nan = _mm256_or_ps(nan, _mm256_or_ps(n01, n23));
    }
    for (; i + 8 <= k; i += 8) {
        const __m256 a = _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i));
        acc0 = _mm256_max_ps(a, acc0);
        nan = _mm256_or_ps(nan, _mm256_cmp_ps(a, a, _CMP_UNORD_Q));
    }
    // 4 accumulators → 1 → horizontal max over 8 lanes
    __m256 acc = _mm256_max_ps(_mm256_max_ps(acc0, acc1), _mm256_max_ps(acc2, acc3));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
    float amax = _mm_cvtss_f32(h);
    // scalar tail, same rule as the reference
    return ek_q8_amax_from(x, i, k, amax, _mm256_movemask_ps(nan) != 0);
}

// 8 floats → 8 int32 codes: round half to even, NaN → 0, clamp to ±qmax.
inline __m256i codes8(__m256 x, __m256 inv, __m256 lo, __m256 hi) {
    const __m256 p = _mm256_mul_ps(x, inv);
    __m256 r = _mm256_round_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm256_and_ps(r, _mm256_cmp_ps(r, r, _CMP_ORD_Q));  // NaN → +0
    r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
    return _mm256_cvttps_epi32(r);  // exact: r is already integral
}

}  // namespace

extern "C" void ek_quant_row_q8__avx2(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales) {
    assert(m >= 0 && k >= 0);
    assert(qmax >= 1 && qmax <= 127);
    assert((x && q && scales) || m == 0);

    const float fqmax = (float)qmax;
    const __m256 hi = _mm256_set1_ps(fqmax);
    const __m256 lo = _mm256_set1_ps(-fqmax);
    // after packs_epi32 + packs_epi16 the dwords come out lane-interleaved: a0-3 b0-3 c0-3 d0-3 | a4-7 b4-7 ...
    const __m256i unshuffle = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);

    for (int64_t r = 0; r < m; ++r) {
        const float* xr = x + r * k;
        int8_t* qr = q + r * k;

        const float amax = row_amax_avx2(xr, k);
        const float inv_s = ek_q8_inv(amax, qmax);
        const __m256 inv = _mm256_set1_ps(inv_s);

        int64_t i = 0;
        for (; i + 32 <= k; i += 32) {
            const __m256i a = codes8(_mm256_loadu_ps(xr + i), inv, lo, hi);
            const __m256i b = codes8(_mm256_loadu_ps(xr + i + 8), inv, lo, hi);
            const __m256i c = codes8(_mm256_loadu_ps(xr + i + 16), inv, lo, hi);
            const __m256i d = codes8(_mm256_loadu_ps(xr + i + 24), inv, lo, hi);
            // int32 → int16 → int8 (values already fit, saturation never triggers), then restore order
            const __m256i ab = _mm256_packs_epi32(a, b);
            const __m256i cd = _mm256_packs_epi32(c, d);
            const __m256i abcd = _mm256_permutevar8x32_epi32(_mm256_packs_epi16(ab, cd), unshuffle);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(qr + i), abcd);
        }
        for (; i + 8 <= k; i += 8) {
            const __m256i a = codes8(_mm256_loadu_ps(xr + i), inv, lo, hi);
            // 8 × int32 → 8 × int16 → 8 × int8 in the low 64 bits
            const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
            _mm_storel_epi64(reinterpret_cast<__m128i*>(qr + i), _mm_packs_epi16(w, w));
        }
        for (; i < k; ++i) qr[i] = ek_q8_code(xr[i], inv_s, fqmax);

        scales[r] = amax / fqmax;
    }
}
