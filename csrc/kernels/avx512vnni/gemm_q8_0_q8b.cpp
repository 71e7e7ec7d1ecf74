// Integer Q8_0 head kernel, AVX-512 VNNI (kernels.h: ek_gemm_q8_0_q8b; loops in gemm_q8_0_q8b_x86.h): the 32-byte
// dot is one 256-bit vpdpbusd (AVX512VL). 256 bits, not 512: a block is 32 bytes, and on Zen 4 a 512-bit op is two
// 256-bit halves anyway (the AVX-512 float head kernel tried on it was no faster than AVX2's, BENCHMARKS §4).
#include "../gemm_q8_0_q8b_x86.h"

namespace {

struct Dot {
    static __m256i lanes(__m256i ax, __m256i ws) { return _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, ws); }
};

}  // namespace

extern "C" void ek_gemm_q8_0_q8b__avx512vnni(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq,
                                             const float* xs, int64_t m, int64_t k, float* y, int64_t ldy,
                                             int64_t r0, int64_t r1) {
    ek_q8b_x86::gemm<Dot>(q, d, ldq, xq, xs, m, k, y, ldy, r0, r1);
}
