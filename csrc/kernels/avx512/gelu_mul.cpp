// AVX-512F gated-GELU kernel, bit-identical to the scalar reference (kernels.h): 16 lanes per step, the remainder
// through the reference's own loop.
#include <immintrin.h>

#include "../gelu_mul_common.h"
#include "edgekit/kernels.h"
#include "exp_avx512.h"

extern "C" void ek_gelu_mul_f32__avx512(float* g, const float* u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f), c1 = _mm512_set1_ps(EK_GELU_C1), c2 = _mm512_set1_ps(EK_GELU_C2);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(g + i);
        // z = x * (C2 * x² + C1), multiplies and adds rounded separately (no fma), as the reference
        const __m512 w = _mm512_add_ps(_mm512_mul_ps(c2, _mm512_mul_ps(x, x)), c1);
        const __m512 z = _mm512_mul_ps(x, w);
        const __m512 d = _mm512_add_ps(one, ek_exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), z)));
        _mm512_storeu_ps(g + i, _mm512_mul_ps(_mm512_div_ps(x, d), _mm512_loadu_ps(u + i)));
    }
    ek_gelu_mul_tail(g, u, i, n);
}
