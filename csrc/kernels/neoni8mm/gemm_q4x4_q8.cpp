// Armv8.6 int8 matrix-multiply (SMMLA, FEAT_I8MM: Cortex-A510/A710/X2 and later, most arm64 phones since 2022)
// W4A8 matmul on the q4x4 layout (kernels.h has the exact formula; the scalar reference is
// csrc/kernels/scalar/gemm_q4x4_q8.cpp).
//
// Compiled with -march=armv8.2-a+dotprod+i8mm for this file only (CMakeLists.txt); dispatch.cpp calls it only when
// HWCAP reports ASIMDDP and HWCAP2 reports I8MM (every I8MM core has dotprod too, and the single-token path uses it).
//
// SMMLA multiplies a 2x8 int8 matrix by an 8x2 one into a 2x2 int32 tile: 32 products per instruction where SDOT
// does 16. It pays when two tokens share the weights, i.e. in prefill (M > 1). A tile-block (four rows, one block
// of 32 codes) is unpacked once into the SMMLA layout: for the row pairs p = (0,1), (2,3) and the code chunks
// c = 0..3 (codes 8c..8c+7), a[p][c] = [row 2p, chunk c | row 2p+1, chunk c] as signed codes -8..7. A token pair's
// chunk c is [token u, chunk c | token u+1, chunk c]; four SMMLA per row pair give
// [row 2p·tok u, row 2p·tok u+1, row 2p+1·tok u, row 2p+1·tok u+1], and one unzip of the two row pairs gives each
// token's four rows in lane order, as the other Arm kernels produce them.
//
// A lone token (M = 1, decode, or the odd last token of a prefill) goes through SDOT on the same unpacked layout:
// SMMLA would leave half of every 2x2 tile unused, so both cost eight instructions per block and SDOT needs no
// activation shuffle; decode is bound by reading the weights anyway. Keeping it in this function (rather than
// dispatching gemv to neondot) keeps one kernel per op and CPU, and one unpack per tile-block for any M.
//
// Every block sum is the exact int32 sum of its 32 products (|sum| <= 32 * 8 * 127), so the integer parts are the
// scalar's bit for bit; the float steps are q4x4_neon_tiles.h's (the scalar's, unfused), so the whole output is.
#include <arm_neon.h>
#include <stdint.h>

#include "../q4x4_neon_tiles.h"
#include "edgekit/kernels.h"

#if !defined(__ARM_FEATURE_MATMUL_INT8) || !defined(__ARM_FEATURE_DOTPROD)
#error "csrc/kernels/neoni8mm needs -march=armv8.2-a+dotprod+i8mm (set per file by CMakeLists.txt)"
#endif

namespace {

constexpr int kPairs = EK_Q4X4_ROWS / 2;        // row pairs of a tile: (0,1), (2,3)
constexpr int kChunks = EK_Q4_BLOCK / 8;        // 8-code chunks of a block (SMMLA's inner dimension)

// One tile-block in SMMLA layout: a[p][c] = 8 codes of row 2p then 8 codes of row 2p+1, chunk c (codes 8c..8c+7).
struct MmlaBlock {
    int8x16_t a[kPairs][kChunks];
};

// A token's 32 codes as its four 8-byte chunks, each in both halves (SDOT against a row pair's chunk).
inline int32x4_t lone_token(const MmlaBlock& mb, const int8_t* xb) {
    int32x4_t s[kPairs] = {vdupq_n_s32(0), vdupq_n_s32(0)};
#pragma GCC unroll 4
    for (int c = 0; c < kChunks; ++c) {
        const int8x8_t h = vld1_s8(xb + 8 * c);
        const int8x16_t xc = vcombine_s8(h, h);
        // 4-byte lanes: [row 2p codes 8c..+3, 8c+4..+7, row 2p+1 codes 8c..+3, 8c+4..+7] · x
        s[0] = vdotq_s32(s[0], mb.a[0][c], xc);
        s[1] = vdotq_s32(s[1], mb.a[1][c], xc);
    }
    // [r0 r0 r1 r1] [r2 r2 r3 r3] → [row0 row1 row2 row3]
    return vpaddq_s32(s[0], s[1]);
}

// Two tokens' exact block sums at once: su = token u, sv = token u + 1 (lane r = row r).
inline void token_pair(const MmlaBlock& mb, const int8_t* xu, const int8_t* xv, int32x4_t* su, int32x4_t* sv) {
    const int64x2_t u0 = vreinterpretq_s64_s8(vld1q_s8(xu));
    const int64x2_t u1 = vreinterpretq_s64_s8(vld1q_s8(xu + EK_Q4_BLOCK / 2));
    const int64x2_t v0 = vreinterpretq_s64_s8(vld1q_s8(xv));
    const int64x2_t v1 = vreinterpretq_s64_s8(vld1q_s8(xv + EK_Q4_BLOCK / 2));
    // 8x2 activation matrices: chunk c of token u, then chunk c of token u + 1
    const int8x16_t b[kChunks] = {
        vreinterpretq_s8_s64(vzip1q_s64(u0, v0)), vreinterpretq_s8_s64(vzip2q_s64(u0, v0)),
        vreinterpretq_s8_s64(vzip1q_s64(u1, v1)), vreinterpretq_s8_s64(vzip2q_s64(u1, v1)),
    };
    int32x4_t s[kPairs] = {vdupq_n_s32(0), vdupq_n_s32(0)};
#pragma GCC unroll 4
    for (int c = 0; c < kChunks; ++c) {
        // 2x8 . 8x2 -> 2x2 int32: [row 2p·u, row 2p·v, row 2p+1·u, row 2p+1·v]
        s[0] = vmmlaq_s32(s[0], mb.a[0][c], b[c]);
        s[1] = vmmlaq_s32(s[1], mb.a[1][c], b[c]);
    }
    // even lanes are token u, odd lanes token v: [r0 r1 r2 r3] each
    *su = vuzp1q_s32(s[0], s[1]);
    *sv = vuzp2q_s32(s[0], s[1]);
}

// The Kernel of q4x4_neon_tiles.h: tokens in pairs through SMMLA, an odd last one through SDOT.
struct MmlaKernel {
    using Block = MmlaBlock;

    static Block unpack(const uint8_t* qs) {
        const uint8x16_t mask = vdupq_n_u8(EK_Q4_LO_MASK);
        const int8x16_t zero = vdupq_n_s8(EK_Q4_SYM_ZERO);
        Block mb;
#pragma GCC unroll 2
        for (int p = 0; p < kPairs; ++p) {
            const uint64x2_t r0 = vreinterpretq_u64_u8(vld1q_u8(qs + (2 * p) * (EK_Q4_BLOCK / 2)));
            const uint64x2_t r1 = vreinterpretq_u64_u8(vld1q_u8(qs + (2 * p + 1) * (EK_Q4_BLOCK / 2)));
            // bytes 0..7 of both rows carry codes 0..7 (low nibbles) and 16..23 (high); bytes 8..15: 8..15, 24..31
            const uint8x16_t z0 = vreinterpretq_u8_u64(vzip1q_u64(r0, r1));
            const uint8x16_t z1 = vreinterpretq_u8_u64(vzip2q_u64(r0, r1));
            // nibbles -> int8 codes -8..7
            mb.a[p][0] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(z0, mask)), zero);
            mb.a[p][1] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(z1, mask)), zero);
            mb.a[p][2] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(z0, EK_Q4_HI_SHIFT)), zero);
            mb.a[p][3] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(z1, EK_Q4_HI_SHIFT)), zero);
        }
        return mb;
    }

    template <int MT>
    static void sums(const Block& mb, const int8_t* x, int64_t k, int32x4_t* s) {
        int u = 0;
#pragma GCC unroll 2
        for (; u + 1 < MT; u += 2) token_pair(mb, x + u * k, x + (u + 1) * k, &s[u], &s[u + 1]);
        if (u < MT) s[u] = lone_token(mb, x + u * k);
    }
};

}  // namespace

extern "C" void ek_gemm_q4x4_q8__neoni8mm(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                          int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1) {
    (void)xbsum;  // signed codes carry the -8 offset themselves: no lane sums to take off
    gemm_q4x4_tiles<MmlaKernel>(w, xq, xs, m, y, ldy, t0, t1);
}

extern "C" void ek_gemm_q4x4_q8b__neoni8mm(const ek_q4x4* w, const int8_t* xq, const float* xs,
                                           const int32_t* xbsum, int64_t m, float* y, int64_t ldy, int64_t t0,
                                           int64_t t1) {
    (void)xbsum;  // signed codes carry the -8 offset themselves: no lane sums to take off
    gemm_q4x4_tiles<MmlaKernel, true>(w, xq, xs, m, y, ldy, t0, t1);
}
