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
