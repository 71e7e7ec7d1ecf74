// fp32 → fp16 rows with F16C (vcvtps2ph, round to nearest even): ek_fp32_to_fp16's bits for every non-NaN input.
#include <immintrin.h>

#include "edgekit/kernels.h"

extern "C" void ek_cvt_f32_f16__avx2(const float* x, uint16_t* y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
    }
    for (; i < n; ++i) y[i] = ek_fp32_to_fp16(x[i]);
}
