// AVX2 + FMA gated-GELU kernel, bit-identical to the scalar reference (kernels.h): eight lanes per step, the
// remainder through the reference's own loop.
#include <immintrin.h>

#include "../gelu_mul_common.h"
#include "edgekit/kernels.h"
#include "exp_avx2.h"

extern "C" void ek_gelu_mul_f32__avx2(float* g, const float* u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f), c1 = _mm256_set1_ps(EK_GELU_C1), c2 = _mm256_set1_ps(EK_GELU_C2);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        // z = x * (C2 * x² + C1), multiplies and adds rounded separately (no fma), as the reference
        const __m256 w = _mm256_add_ps(_mm256_mul_ps(c2, _mm256_mul_ps(x, x)), c1);
        const __m256 z = _mm256_mul_ps(x, w);
        const __m256 d = _mm256_add_ps(one, ek_exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), z)));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, d), _mm256_loadu_ps(u + i)));
    }
    ek_gelu_mul_tail(g, u, i, n);
}
