// ek_exp on 16 lanes (AVX-512F): the operations of exp_common.h in the same order, so the same bits.
#ifndef EDGEKIT_KERNELS_AVX512_EXP_H
#define EDGEKIT_KERNELS_AVX512_EXP_H

#include <immintrin.h>

#include "../exp_common.h"

static inline __m512 ek_exp_avx512(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(EK_EXP_LO));  // maxps returns its second operand for NaN
    x = _mm512_min_ps(x, _mm512_set1_ps(EK_EXP_HI));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(EK_EXP_LOG2E)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 nn = _mm512_sub_ps(_mm512_setzero_ps(), n);
    __m512 r = _mm512_fmadd_ps(nn, _mm512_set1_ps(EK_EXP_LN2_HI), x);
    r = _mm512_fmadd_ps(nn, _mm512_set1_ps(EK_EXP_LN2_LO), r);
    __m512 p = _mm512_set1_ps(EK_EXP_C7);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EK_EXP_C6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EK_EXP_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EK_EXP_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EK_EXP_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(EK_EXP_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(p, _mm512_castsi512_ps(bits));
}

#endif  // EDGEKIT_KERNELS_AVX512_EXP_H
