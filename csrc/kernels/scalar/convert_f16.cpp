// fp32 → fp16 rows (the KV cache stores), scalar: ek_fp32_to_fp16 per element (round to nearest even).
#include "edgekit/kernels.h"

extern "C" void ek_cvt_f32_f16__scalar(const float* x, uint16_t* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = ek_fp32_to_fp16(x[i]);
}
