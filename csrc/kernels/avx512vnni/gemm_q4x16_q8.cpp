// W4A8 matmul on the q4x16 layout, AVX-512 VNNI (kernels.h has the contract; scalar/gemm_q4x16_q8.cpp the
// reference).
//
// Why a second layout: on q4x4 a 512-bit register holds four rows, so every vpdpbusd pair is followed by four
// float operations (offset, convert, scale, fma) that serve only four rows. Here each 32-bit lane is its own row:
// a block of 16 rows is eight vpdpbusd (four code bytes of every row times four activations broadcast to all
// lanes), after which one offset, one conversion, one scale product and one fma serve all 16 rows. The codes are
// u8 0..15; the -8 is taken off as 8 * (the block's activation sum), one scalar per (token, block).
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include <vector>

#include "edgekit/kernels.h"

namespace {

// Tokens per pass over a block in prefill: each unpacked block (eight registers) meets eight tokens. Measured on
// 1536 x 576, M = 128: 8 and 6 tokens ~8 % faster than 4.
constexpr int MT = 8;
// Decode prefetches 8 KB ahead into L2 (prefetcht1), for every K: on a Zen 4 EPYC this streamed SmolLM2's 30
// layers 4-11 % faster than prefetcht0 only where a group is under 8 KB (BENCHMARKS section 4, "Prefetching into L2")
constexpr int64_t kPrefetchBytes = 8192;

inline __m512i bcast32(const int8_t* p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return _mm512_set1_epi32(v);
}

// MR tokens x one group of 16 rows: every unpacked block meets MR tokens. One group per pass in decode too: two
// groups interleaved (two weight streams per thread) decoded SmolLM2-135M 14-26 % slower on a Zen 4 EPYC than one
// sequential stream (bench_results/q4x16-decode-streams-zen4.json).
template <int MR, bool kBlockScales>
void group_tokens(const ek_q4x4* w, int64_t g, const int8_t* xq, const float* xs, const int32_t* off8, float* y,
                  int64_t ldy) {
    const int64_t k = w->k, nb = k / EK_Q4_BLOCK;
    const __m512i nib = _mm512_set1_epi8(EK_Q4_LO_MASK);
    const int64_t group_qs = ek_q4_ldb(w) * EK_Q4X16_GROUP_QS_BYTES, group_d = ek_q4_ldb(w) * EK_Q4X16_ROWS;
    const uint8_t* qs = w->qs + g * group_qs;
    const uint16_t* ds = w->d + g * group_d;
    __m512 acc[MR];
    for (int i = 0; i < MR; ++i) acc[i] = _mm512_setzero_ps();
    for (int64_t j = 0; j < nb; ++j) {
        __m512i c[8];
        const uint8_t* b = qs + j * EK_Q4X16_GROUP_QS_BYTES;
        if (MR == 1) {
            for (int l = 0; l < 4; ++l) _mm_prefetch(reinterpret_cast<const char*>(b) + kPrefetchBytes + 64 * l,
                                                     _MM_HINT_T1);
        }
        for (int l = 0; l < 4; ++l) {
            const __m512i v = _mm512_loadu_si512(b + 64 * l);
            c[l] = _mm512_and_si512(v, nib);                          // codes 4l .. 4l+3 of every row
            c[4 + l] = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);  // codes 16+4l .. 16+4l+3
        }
        const __m512 d = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(ds + j * 16)));
        // unrolled so that acc[] stays in registers (GCC otherwise keeps it on the stack: a load and a store per
        // token and block)
#pragma GCC unroll 8
        for (int i = 0; i < MR; ++i) {
            const int8_t* xb = xq + i * k + j * EK_Q4_BLOCK;
            // the -8 offset starts the low chain (exact int32: the same sum as subtracting it at the end); two
            // chains (codes < 16 and >= 16) for the dpbusd latency
            __m512i lo = _mm512_set1_epi32(-off8[i * nb + j]), hi = _mm512_setzero_si512();
            for (int l = 0; l < 4; ++l) {
                lo = _mm512_dpbusd_epi32(lo, c[l], bcast32(xb + 4 * l));
                hi = _mm512_dpbusd_epi32(hi, c[4 + l], bcast32(xb + 16 + 4 * l));
            }
            const __m512i dot = _mm512_add_epi32(lo, hi);
            const __m512 dx = kBlockScales ? _mm512_mul_ps(d, _mm512_set1_ps(xs[i * nb + j])) : d;
            acc[i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), dx, acc[i]);
        }
    }
    const int64_t row0 = g * EK_Q4X16_ROWS;
    const int64_t rows = w->n - row0 < EK_Q4X16_ROWS ? w->n - row0 : EK_Q4X16_ROWS;
    const __mmask16 keep = (__mmask16)((1u << rows) - 1);
    for (int i = 0; i < MR; ++i) {
        const __m512 out = kBlockScales ? acc[i] : _mm512_mul_ps(acc[i], _mm512_set1_ps(xs[i]));
        _mm512_mask_storeu_ps(y + i * ldy + row0, keep, out);  // padding rows are never written
    }
}

template <int MR, bool kBlockScales>
void tokens_all_groups(const ek_q4x4* w, int64_t g0, int64_t g1, const int8_t* xq, const float* xs,
                       const int32_t* off8, float* y, int64_t ldy) {
    for (int64_t g = g0; g < g1; ++g) group_tokens<MR, kBlockScales>(w, g, xq, xs, off8, y, ldy);
}

template <bool kBlockScales>
void gemm(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m, float* y,
          int64_t ldy, int64_t g0, int64_t g1) {
    const int64_t nb = w->k / EK_Q4_BLOCK;
    const int64_t xs_per_token = kBlockScales ? nb : 1;
    // the codes' -8 per (token, block): 8 * the block's activation sum, from its four lane sums, once per call
    thread_local std::vector<int32_t> offs;
    offs.resize((size_t)(m * nb));
    for (int64_t b = 0; b < m * nb; ++b) {
        const int32_t* ls = xbsum + b * 4;
        offs[b] = 8 * (ls[0] + ls[1] + ls[2] + ls[3]);
    }
    const int32_t* off8 = offs.data();
    int64_t i = 0;
    for (; i + MT <= m; i += MT) {
        tokens_all_groups<MT, kBlockScales>(w, g0, g1, xq + i * w->k, xs + i * xs_per_token, off8 + i * nb,
                                            y + i * ldy, ldy);
    }
    for (; i + 4 <= m; i += 4) {
        tokens_all_groups<4, kBlockScales>(w, g0, g1, xq + i * w->k, xs + i * xs_per_token, off8 + i * nb,
                                           y + i * ldy, ldy);
    }
    const int64_t r = m - i;
    const int8_t* xr = xq + i * w->k;
    const float* sr = xs + i * xs_per_token;
    const int32_t* br = off8 + i * nb;
    if (r == 3) tokens_all_groups<3, kBlockScales>(w, g0, g1, xr, sr, br, y + i * ldy, ldy);
    if (r == 2) tokens_all_groups<2, kBlockScales>(w, g0, g1, xr, sr, br, y + i * ldy, ldy);
    if (r == 1) tokens_all_groups<1, kBlockScales>(w, g0, g1, xr, sr, br, y + i * ldy, ldy);
}

}  // namespace

extern "C" void ek_gemm_q4x16_q8__avx512vnni(const ek_q4x4* w, const int8_t* xq, const float* xs,
                                             const int32_t* xbsum, int64_t m, float* y, int64_t ldy, int64_t t0,
                                             int64_t t1) {
    gemm<false>(w, xq, xs, xbsum, m, y, ldy, t0, t1);
}

extern "C" void ek_gemm_q4x16_q8b__avx512vnni(const ek_q4x4* w, const int8_t* xq, const float* xs,
                                              const int32_t* xbsum, int64_t m, float* y, int64_t ldy, int64_t t0,
                                              int64_t t1) {
    gemm<true>(w, xq, xs, xbsum, m, y, ldy, t0, t1);
}
