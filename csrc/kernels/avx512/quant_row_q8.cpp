// AVX-512 per-row activation quantizer, bit-identical to ek_quant_row_q8__scalar.
//
// Compiled with -mavx512f -mavx512bw -mavx512vl for the files of this folder only (CMakeLists.txt). Tails use masked
// loads and stores, so there is no scalar remainder loop. Exactness as in the AVX2 kernel: order-free max, one IEEE
// multiply, round half to even, NaN → 0, clamp.
#include <assert.h>
#include <immintrin.h>
#include <math.h>
#include <stdint.h>

#include "../quant_row_q8_common.h"
#include "edgekit/kernels.h"

namespace {

inline __mmask16 tail_mask(int64_t n) {
    return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
}

// max |x| over one row (NaN anywhere → NaN).
float row_amax_avx512(const float* x, int64_t k) {
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
    __mmask16 nan = 0;
    int64_t i = 0;
    for (; i + 64 <= k; i += 64) {
        const __m512 a0 = _mm512_abs_ps(_mm512_loadu_ps(x + i));
        const __m512 a1 = _mm512_abs_ps(_mm512_loadu_ps(x + i + 16));
        const __m512 a2 = _mm512_abs_ps(_mm512_loadu_ps(x + i + 32));
        const __m512 a3 = _mm512_abs_ps(_mm512_loadu_ps(x + i + 48));
        // max_ps(a, acc) keeps acc when a is NaN; NaNs are collected in a mask instead
        acc0 = _mm512_max_ps(a0, acc0);
        acc1 = _mm512_max_ps(a1, acc1);
        acc2 = _mm512_max_ps(a2, acc2);
        acc3 = _mm512_max_ps(a3, acc3);
        nan |= _mm512_cmp_ps_mask(a0, a0, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(a1, a1, _CMP_UNORD_Q) |
               _mm512_cmp_ps_mask(a2, a2, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(a3, a3, _CMP_UNORD_Q);
    }
    for (; i < k; i += 16) {
        // masked-off lanes load as 0, which cannot raise the max
        const __m512 a = _mm512_abs_ps(_mm512_maskz_loadu_ps(tail_mask(k - i), x + i));
        acc0 = _mm512_max_ps(a, acc0);
        nan |= _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
    }
    const __m512 acc = _mm512_max_ps(_mm512_max_ps(acc0, acc1), _mm512_max_ps(acc2, acc3));
    const float amax = _mm512_reduce_max_ps(acc);
    return nan ? NAN : amax;
}

// 16 floats → 16 int32 codes: round half to even, NaN → 0, clamp to ±qmax.
inline __m512i codes16(__m512 x, __m512 inv, __m512 lo, __m512 hi) {
    const __m512 p = _mm512_mul_ps(x, inv);
    __m512 r = _mm512_roundscale_ps(p, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    r = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(r, r, _CMP_ORD_Q), r);  // NaN → +0
    r = _mm512_min_ps(_mm512_max_ps(r, lo), hi);
    return _mm512_cvttps_epi32(r);  // exact: r is already integral
}

}  // namespace

extern "C" void ek_quant_row_q8__avx512(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales) {
    assert(m >= 0 && k >= 0);
    assert(qmax >= 1 && qmax <= 127);
    assert((x && q && scales) || m == 0);

    const float fqmax = (float)qmax;
    const __m512 hi = _mm512_set1_ps(fqmax);
    const __m512 lo = _mm512_set1_ps(-fqmax);

    for (int64_t r = 0; r < m; ++r) {
        const float* xr = x + r * k;
        int8_t* qr = q + r * k;

        const float amax = row_amax_avx512(xr, k);
        const __m512 inv = _mm512_set1_ps(ek_q8_inv(amax, qmax));

        int64_t i = 0;
        for (; i + 32 <= k; i += 32) {
            const __m512i a = codes16(_mm512_loadu_ps(xr + i), inv, lo, hi);
            const __m512i b = codes16(_mm512_loadu_ps(xr + i + 16), inv, lo, hi);
            // int32 → int8 with saturation (a no-op here: codes already lie in ±127)
            _mm_storeu_si128(reinterpret_cast<__m128i*>(qr + i), _mm512_cvtsepi32_epi8(a));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(qr + i + 16), _mm512_cvtsepi32_epi8(b));
        }
        for (; i < k; i += 16) {
            const __mmask16 mk = tail_mask(k - i);
            const __m512i a = codes16(_mm512_maskz_loadu_ps(mk, xr + i), inv, lo, hi);
            _mm512_mask_cvtsepi32_storeu_epi8(qr + i, mk, a);
        }

        scales[r] = amax / fqmax;
    }
}
