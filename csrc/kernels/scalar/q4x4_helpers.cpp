// ISA-independent helpers of the q4x4 matmul: block sums of int8 activations, Q4_0 → q4x4 repacking, fp16 → fp32.
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "edgekit/kernels.h"

extern "C" void ek_lane_sums_q8(const int8_t* xq, int64_t m, int64_t k, int32_t* xbsum) {
    assert(k % EK_Q4_BLOCK == 0);
    const int64_t nb = k / EK_Q4_BLOCK;
    const int half = EK_Q4_BLOCK / 2;
    for (int64_t i = 0; i < m * nb; ++i) {
        const int8_t* b = xq + i * EK_Q4_BLOCK;
        for (int l = 0; l < 4; ++l) {
            int32_t s = 0;
            for (int c = 0; c < 4; ++c) s += b[4 * l + c] + b[half + 4 * l + c];
            xbsum[i * 4 + l] = s;
        }
    }
}

extern "C" void ek_pack_q4x4(const ek_block_q4_0* rows, int64_t n, int64_t k, uint8_t* qs, uint16_t* d) {
    assert(k % EK_Q4_BLOCK == 0);
    const int64_t nb = k / EK_Q4_BLOCK;
    const int64_t tiles = (n + EK_Q4X4_ROWS - 1) / EK_Q4X4_ROWS;
    const int half = EK_Q4_BLOCK / 2;
    for (int64_t t = 0; t < tiles; ++t) {
        for (int64_t j = 0; j < nb; ++j) {
            uint8_t* dst = qs + (t * nb + j) * EK_Q4X4_TILE_QS_BYTES;
            uint16_t* dd = d + (t * nb + j) * EK_Q4X4_ROWS;
            for (int r = 0; r < EK_Q4X4_ROWS; ++r) {
                const int64_t row = t * EK_Q4X4_ROWS + r;
                if (row < n) {
                    const ek_block_q4_0* blk = rows + row * nb + j;
                    memcpy(dst + r * half, blk->qs, half);
                    dd[r] = blk->d;
                } else {
                    memset(dst + r * half, 0x88, half);  // codes 8 = weight 0, scale 0: padding adds nothing
                    dd[r] = 0;
                }
            }
        }
    }
}

extern "C" float ek_fp16_to_fp32(uint16_t h) {
    const uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1F;
    uint32_t man = h & 0x3FF;
    uint32_t bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | (man << 13);  // inf / NaN
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;  // ±0
        } else {  // subnormal: normalize
            int e = -1;
            do {
                man <<= 1;
                ++e;
            } while (!(man & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3FF) << 13);
        }
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

extern "C" uint16_t ek_fp32_to_fp16(float f) {
    uint32_t x;
    memcpy(&x, &f, sizeof x);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    const uint32_t ax = x & 0x7FFFFFFFu;
    if (ax >= 0x7F800000u) return sign | (ax > 0x7F800000u ? 0x7E00 : 0x7C00);  // NaN (quiet) / inf
    if (ax >= 0x477FF000u) return sign | 0x7C00;  // rounds to >= 65520: overflow to inf
    if (ax < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
        if (ax < 0x33000000u) return sign;  // below half of the smallest subnormal (2^-25): ±0
        const uint32_t e = ax >> 23, man = (ax & 0x7FFFFF) | 0x800000;
        const uint32_t shift = 126 - e;  // 14..24: value = man * 2^(e - 150), half subnormal unit 2^-24
        uint32_t h = man >> shift;
        const uint32_t rest = man & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (h & 1))) ++h;  // round to nearest even
        return sign | (uint16_t)h;
    }
    // normal: rebias the exponent, round the 13 dropped mantissa bits to nearest even (a carry may bump the exponent)
    uint32_t h = ((ax >> 13) - ((127 - 15) << 10));
    const uint32_t rest = ax & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) ++h;
    return sign | (uint16_t)h;
}
