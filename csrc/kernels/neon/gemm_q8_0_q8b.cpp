// Integer Q8_0 head kernel, plain NEON (kernels.h: ek_gemm_q8_0_q8b; loops in gemm_q8_0_q8b_neon.h): 16 products
// by two vmull (int16, exact: 127 x 127 fits), then pairwise adds to pairs and to the four-byte lanes.
#include "../gemm_q8_0_q8b_neon.h"

namespace {

struct Dot {
    static int32x4_t lanes(int8x16_t w, int8x16_t x) {
        const int32x4_t a = vpaddlq_s16(vmull_s8(vget_low_s8(w), vget_low_s8(x)));  // bytes 0+1, 2+3, 4+5, 6+7
        const int32x4_t b = vpaddlq_s16(vmull_high_s8(w, x));                       // bytes 8+9, ..., 14+15
        return vpaddq_s32(a, b);                                                    // bytes 0-3, 4-7, 8-11, 12-15
    }
};

}  // namespace

extern "C" void ek_gemm_q8_0_q8b__neon(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq,
                                       const float* xs, int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0,
                                       int64_t r1) {
    ek_q8b_neon::gemm<Dot>(q, d, ldq, xq, xs, m, k, y, ldy, r0, r1);
}
