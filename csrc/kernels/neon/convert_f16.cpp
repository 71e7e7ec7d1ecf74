// fp32 → fp16 rows with fcvtn (round to nearest even under the default FPCR): ek_fp32_to_fp16's bits for every
// non-NaN input.
#include <arm_neon.h>

#include "edgekit/kernels.h"

extern "C" void ek_cvt_f32_f16__neon(const float* x, uint16_t* y, int64_t n) {
    int64_t i = 0;
    for (; i + 4 <= n; i += 4) vst1_u16(y + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(x + i))));
    for (; i < n; ++i) y[i] = ek_fp32_to_fp16(x[i]);
}
