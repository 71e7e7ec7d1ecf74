// Integer Q8_0 head kernel, AVX2 (kernels.h: ek_gemm_q8_0_q8b; loops in gemm_q8_0_q8b_x86.h): the 32-byte dot is
// maddubs (|x| u8 x signed codes s8 → int16 pairs) then madd with ones (→ int32 lanes of four bytes).
#include "../gemm_q8_0_q8b_x86.h"

namespace {

struct Dot {
    static __m256i lanes(__m256i ax, __m256i ws) {
        return _mm256_madd_epi16(_mm256_maddubs_epi16(ax, ws), _mm256_set1_epi16(1));
    }
};

}  // namespace

extern "C" void ek_gemm_q8_0_q8b__avx2(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq,
                                       const float* xs, int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0,
                                       int64_t r1) {
    ek_q8b_x86::gemm<Dot>(q, d, ldq, xq, xs, m, k, y, ldy, r0, r1);
}
