// Roofline probes, portable C (roofline.h): the fallback where no SIMD probe matches the kernel ISA in use.
#include <string.h>

#include "edgekit/roofline.h"

extern "C" {

const int64_t ek_roof_dot_macs__scalar = 8 * 4;  // 8 chains x 4 int8 products per round

uint64_t ek_roof_read_u64__scalar(const uint8_t* p, size_t bytes) {
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // four chains so the adds do not bound the loads
    for (size_t i = 0; i < bytes; i += 32) {
        uint64_t v[4];
        memcpy(v, p + i, sizeof v);
        s0 += v[0];
        s1 += v[1];
        s2 += v[2];
        s3 += v[3];
    }
    return s0 + s1 + s2 + s3;
}

uint64_t ek_roof_dot_i8__scalar(int64_t iters, uint32_t seed) {
    int8_t a[4], b[4];
    for (int j = 0; j < 4; ++j) {
        a[j] = (int8_t)(seed >> (8 * j));
        b[j] = (int8_t)(seed * 7 + j);
    }
    int32_t acc[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    for (int64_t i = 0; i < iters; ++i) {
        for (int c = 0; c < 8; ++c)
            for (int j = 0; j < 4; ++j) acc[c] += (int32_t)a[j] * (int32_t)(int8_t)(b[j] + c);
        __asm__ __volatile__("" : "+m"(a));  // a changes as far as the compiler knows: nothing is hoisted
    }
    uint64_t s = 0;
    for (int c = 0; c < 8; ++c) s += (uint32_t)acc[c];
    return s;
}

}  // extern "C"
