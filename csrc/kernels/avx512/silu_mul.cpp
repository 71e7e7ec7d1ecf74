// AVX-512F SwiGLU kernel, bit-identical to the scalar reference (kernels.h): 16 lanes of ek_exp per step, the
// remainder through the reference's own loop.
#include <immintrin.h>

#include "../silu_mul_common.h"
#include "edgekit/kernels.h"
#include "exp_avx512.h"

extern "C" void ek_silu_mul_f32__avx512(float* g, const float* u, int64_t n) {
    const __m512 one = _mm512_set1_ps(1.0f);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 x = _mm512_loadu_ps(g + i);
        const __m512 d = _mm512_add_ps(one, ek_exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), x)));
        _mm512_storeu_ps(g + i, _mm512_mul_ps(_mm512_div_ps(x, d), _mm512_loadu_ps(u + i)));
    }
    ek_silu_mul_tail(g, u, i, n);
}
