// Integer Q8_0 head kernel, Armv8.2 dot product (kernels.h: ek_gemm_q8_0_q8b; loops in gemm_q8_0_q8b_neon.h): one
// sdot gives the four-byte lanes of 16 bytes directly. Compiled with +dotprod for this file only; dispatch.cpp
// calls it only when HWCAP reports ASIMDDP.
#include "../gemm_q8_0_q8b_neon.h"

namespace {

struct Dot {
    static int32x4_t lanes(int8x16_t w, int8x16_t x) { return vdotq_s32(vdupq_n_s32(0), w, x); }
};

}  // namespace

extern "C" void ek_gemm_q8_0_q8b__neondot(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq,
                                          const float* xs, int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0,
                                          int64_t r1) {
    ek_q8b_neon::gemm<Dot>(q, d, ldq, xq, xs, m, k, y, ldy, r0, r1);
}
