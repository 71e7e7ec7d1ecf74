// ek_exp on eight lanes (AVX2 + FMA): the operations of exp_common.h in the same order, so the same bits.
#ifndef EDGEKIT_KERNELS_AVX2_EXP_H
#define EDGEKIT_KERNELS_AVX2_EXP_H

#include <immintrin.h>

#include "../exp_common.h"

static inline __m256 ek_exp_avx2(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(EK_EXP_LO));  // maxps returns its second operand for NaN
    x = _mm256_min_ps(x, _mm256_set1_ps(EK_EXP_HI));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(EK_EXP_LOG2E)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 nn = _mm256_sub_ps(_mm256_setzero_ps(), n);
    __m256 r = _mm256_fmadd_ps(nn, _mm256_set1_ps(EK_EXP_LN2_HI), x);
    r = _mm256_fmadd_ps(nn, _mm256_set1_ps(EK_EXP_LN2_LO), r);
    __m256 p = _mm256_set1_ps(EK_EXP_C7);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EK_EXP_C6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EK_EXP_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EK_EXP_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EK_EXP_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(EK_EXP_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}

#endif  // EDGEKIT_KERNELS_AVX2_EXP_H
