// Roofline dot probe, AVX-512 VNNI (roofline.h): 16 independent vpdpbusd zmm chains (64 u8 x s8 products each), as
// the avx512vnni GEMM kernels use. 16 chains cover a 4-5 cycle latency at up to 2 per cycle; on a core that splits
// 512-bit ops into two 256-bit halves (AMD Zen 4) that simply shows up as a lower measured rate.
#include <immintrin.h>

#include "edgekit/roofline.h"

extern "C" {

const int64_t ek_roof_dot_macs__avx512vnni = 16 * 64;

uint64_t ek_roof_dot_i8__avx512vnni(int64_t iters, uint32_t seed) {
    __m512i a = _mm512_set1_epi32((int)(seed | 0x01010101u));
    __m512i b = _mm512_set1_epi32((int)(seed * 2654435761u));
    __m512i c[16];
    for (int k = 0; k < 16; ++k) c[k] = _mm512_set1_epi32(k);
    for (int64_t i = 0; i < iters; ++i) {
        __asm__ __volatile__("" : "+v"(a), "+v"(b));  // operands opaque to the compiler: nothing is hoisted
        c[0] = _mm512_dpbusd_epi32(c[0], a, b);
        c[1] = _mm512_dpbusd_epi32(c[1], a, b);
        c[2] = _mm512_dpbusd_epi32(c[2], a, b);
        c[3] = _mm512_dpbusd_epi32(c[3], a, b);
        c[4] = _mm512_dpbusd_epi32(c[4], a, b);
        c[5] = _mm512_dpbusd_epi32(c[5], a, b);
        c[6] = _mm512_dpbusd_epi32(c[6], a, b);
        c[7] = _mm512_dpbusd_epi32(c[7], a, b);
        c[8] = _mm512_dpbusd_epi32(c[8], a, b);
        c[9] = _mm512_dpbusd_epi32(c[9], a, b);
        c[10] = _mm512_dpbusd_epi32(c[10], a, b);
        c[11] = _mm512_dpbusd_epi32(c[11], a, b);
        c[12] = _mm512_dpbusd_epi32(c[12], a, b);
        c[13] = _mm512_dpbusd_epi32(c[13], a, b);
        c[14] = _mm512_dpbusd_epi32(c[14], a, b);
        c[15] = _mm512_dpbusd_epi32(c[15], a, b);
    }
    __m512i s = c[0];
    for (int k = 1; k < 16; ++k) s = _mm512_add_epi32(s, c[k]);
    return (uint64_t)(uint32_t)_mm512_reduce_add_epi32(s);
}

}  // extern "C"
