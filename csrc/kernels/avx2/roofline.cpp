// Roofline probes, AVX2 (roofline.h): 256-bit streaming loads; the AVX2 int8 dot product as the avx2 GEMM kernel
// does it (vpmaddubsw u8 x s8 → int16 pairs, vpmaddwd by ones → int32, vpaddd into the accumulator).
#include <immintrin.h>

#include "edgekit/roofline.h"

extern "C" {

const int64_t ek_roof_dot_macs__avx2 = 6 * 32;  // 6 chains x 32 products per round

uint64_t ek_roof_read_u64__avx2(const uint8_t* p, size_t bytes) {
    __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < bytes; i += EK_ROOF_READ_ALIGN) {
        const __m256i* q = reinterpret_cast<const __m256i*>(p + i);
        // 8 loads of 32 bytes per step, folded into four chains
        s0 = _mm256_add_epi64(s0, _mm256_add_epi64(_mm256_load_si256(q + 0), _mm256_load_si256(q + 1)));
        s1 = _mm256_add_epi64(s1, _mm256_add_epi64(_mm256_load_si256(q + 2), _mm256_load_si256(q + 3)));
        s2 = _mm256_add_epi64(s2, _mm256_add_epi64(_mm256_load_si256(q + 4), _mm256_load_si256(q + 5)));
        s3 = _mm256_add_epi64(s3, _mm256_add_epi64(_mm256_load_si256(q + 6), _mm256_load_si256(q + 7)));
    }
    const __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
    alignas(32) uint64_t v[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(v), s);
    return v[0] + v[1] + v[2] + v[3];
}

uint64_t ek_roof_dot_i8__avx2(int64_t iters, uint32_t seed) {
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i b = _mm256_set1_epi32((int)(seed * 2654435761u) & 0x3f3f3f3f);  // small s8: no int16 saturation
    // one distinct u8 operand per chain, so no two chains compute the same product (no common subexpression)
    __m256i a0 = _mm256_set1_epi8(1), a1 = _mm256_set1_epi8(2), a2 = _mm256_set1_epi8(3), a3 = _mm256_set1_epi8(4),
            a4 = _mm256_set1_epi8(5), a5 = _mm256_set1_epi8(6);
    __m256i c0 = _mm256_set1_epi32((int)seed), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0;
    for (int64_t i = 0; i < iters; ++i) {
        // the operands change as far as the compiler knows: nothing is hoisted out of the loop
        __asm__ __volatile__("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5));
        c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(_mm256_maddubs_epi16(a0, b), ones));
        c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(_mm256_maddubs_epi16(a1, b), ones));
        c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(_mm256_maddubs_epi16(a2, b), ones));
        c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(_mm256_maddubs_epi16(a3, b), ones));
        c4 = _mm256_add_epi32(c4, _mm256_madd_epi16(_mm256_maddubs_epi16(a4, b), ones));
        c5 = _mm256_add_epi32(c5, _mm256_madd_epi16(_mm256_maddubs_epi16(a5, b), ones));
    }
    const __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                       _mm256_add_epi32(c4, c5));
    alignas(32) uint32_t v[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(v), s);
    uint64_t r = 0;
    for (uint32_t x : v) r += x;
    return r;
}

}  // extern "C"
