// AVX2 + FMA SwiGLU kernel, bit-identical to the scalar reference (kernels.h): eight lanes of ek_exp per step, the
// remainder through the reference's own loop.
#include <immintrin.h>

#include "../silu_mul_common.h"
#include "edgekit/kernels.h"
#include "exp_avx2.h"

extern "C" void ek_silu_mul_f32__avx2(float* g, const float* u, int64_t n) {
    const __m256 one = _mm256_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(g + i);
        const __m256 d = _mm256_add_ps(one, ek_exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), x)));
        _mm256_storeu_ps(g + i, _mm256_mul_ps(_mm256_div_ps(x, d), _mm256_loadu_ps(u + i)));
    }
    ek_silu_mul_tail(g, u, i, n);
}
