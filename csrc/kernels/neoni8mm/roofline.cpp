// Roofline dot probe, NEON I8MM (roofline.h): 12 independent smmla chains (a 2x8 by 8x2 int8 tile into 2x2 int32,
// 32 s8 x s8 products each), as the neoni8mm GEMM kernel uses for token pairs.
#include <arm_neon.h>

#include "edgekit/roofline.h"

extern "C" {

const int64_t ek_roof_dot_macs__neoni8mm = 12 * 32;

uint64_t ek_roof_dot_i8__neoni8mm(int64_t iters, uint32_t seed) {
    int8x16_t a = vreinterpretq_s8_u32(vdupq_n_u32(seed | 0x01010101u));
    int8x16_t b = vreinterpretq_s8_u32(vdupq_n_u32(seed * 2654435761u));
    int32x4_t c[12];
    for (int k = 0; k < 12; ++k) c[k] = vdupq_n_s32(k);
    for (int64_t i = 0; i < iters; ++i) {
        __asm__ __volatile__("" : "+w"(a), "+w"(b));  // operands opaque to the compiler: nothing is hoisted
#pragma GCC unroll 12  // the chains must stay in registers at any -O level
        for (int k = 0; k < 12; ++k) c[k] = vmmlaq_s32(c[k], a, b);  // 2x8 . 8x2 -> 2x2 int32
    }
    int32x4_t s = c[0];
    for (int k = 1; k < 12; ++k) s = vaddq_s32(s, c[k]);
    return (uint64_t)(uint32_t)vaddvq_s32(s);
}

}  // extern "C"
