// Roofline read probe, AVX-512 (roofline.h): 512-bit streaming loads, four chains of 64-bit adds.
#include <immintrin.h>

#include "edgekit/roofline.h"

extern "C" {

uint64_t ek_roof_read_u64__avx512(const uint8_t* p, size_t bytes) {
    __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
    for (size_t i = 0; i < bytes; i += EK_ROOF_READ_ALIGN) {
        const __m512i* q = reinterpret_cast<const __m512i*>(p + i);
        s0 = _mm512_add_epi64(s0, _mm512_load_si512(q + 0));
        s1 = _mm512_add_epi64(s1, _mm512_load_si512(q + 1));
        s2 = _mm512_add_epi64(s2, _mm512_load_si512(q + 2));
        s3 = _mm512_add_epi64(s3, _mm512_load_si512(q + 3));
    }
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(s0, s1), _mm512_add_epi64(s2, s3)));
}

}  // extern "C"
