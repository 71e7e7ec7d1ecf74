// Roofline read probe, NEON (roofline.h): 128-bit streaming loads, four chains of 64-bit adds.
#include <arm_neon.h>

#include "edgekit/roofline.h"

extern "C" {

uint64_t ek_roof_read_u64__neon(const uint8_t* p, size_t bytes) {
    uint64x2_t s0 = vdupq_n_u64(0), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < bytes; i += EK_ROOF_READ_ALIGN) {
        const uint64_t* q = reinterpret_cast<const uint64_t*>(p + i);
        for (int k = 0; k < 16; k += 4) {  // 16 loads of 16 bytes per step
            s0 = vaddq_u64(s0, vld1q_u64(q + 2 * k));
            s1 = vaddq_u64(s1, vld1q_u64(q + 2 * k + 2));
            s2 = vaddq_u64(s2, vld1q_u64(q + 2 * k + 4));
            s3 = vaddq_u64(s3, vld1q_u64(q + 2 * k + 6));
        }
    }
    return vaddvq_u64(vaddq_u64(vaddq_u64(s0, s1), vaddq_u64(s2, s3)));
}

}  // extern "C"
