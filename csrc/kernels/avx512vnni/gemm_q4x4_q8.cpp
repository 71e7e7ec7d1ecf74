// W4A8 matmul on the q4x4 layout, AVX-512 VNNI (kernels.h has the formula; scalar/gemm_q4x4_q8.cpp the reference).
//
// One 512-bit load is one block of a four-row tile: 128-bit lane r holds row r's 16 nibble bytes. Low nibbles are
// codes 0..15 and high nibbles codes 16..31 of the block, so each half meets the matching 16 activations broadcast
// to all four lanes, and vpdpbusd (u8 codes x s8 activations, four products per int32 lane) leaves every row's
// block sum spread over its lane's four int32s. The -8 offset of the codes is taken off each lane as 8 * (the sum
// of the activations that lane met), so each lane holds exactly its eight (q - 8) * x products. Up to four tokens share each unpacked
// block (prefill); one float accumulator per token holds the scaled block sums until the end of the row.
#include <immintrin.h>
#include <stdint.h>

#include "edgekit/kernels.h"

namespace {

constexpr int64_t kPrefetchBytes = 8192;  // measured: 8 KB ahead streams DRAM best

// [d0 d1 d2 d3] fp16 → each scale repeated over its row's four lanes
inline __m512 load_scales(const uint16_t* d) {
    const __m128 d4 = _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(d)));
    const __m512i idx = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(d4));
}

// sums of the four lanes of each 128-bit quarter → [row0, row1, row2, row3]
inline __m128 reduce_rows(__m512 acc) {
    const __m128 r0 = _mm512_castps512_ps128(acc);
    const __m128 r1 = _mm512_extractf32x4_ps(acc, 1);
    const __m128 r2 = _mm512_extractf32x4_ps(acc, 2);
    const __m128 r3 = _mm512_extractf32x4_ps(acc, 3);
    return _mm_hadd_ps(_mm_hadd_ps(r0, r1), _mm_hadd_ps(r2, r3));
}

// MR tokens x NT consecutive tiles: every unpacked block meets MR tokens, every broadcast activation block NT
// tiles, and the MR * NT accumulators are independent chains (the FMA latency would otherwise bound a GEMV).
// kBlockScales: xs holds one scale per (token, block) (ek_gemm_q4x4_q8b), folded into the weight scales per block;
// otherwise one per token, applied once at the end.
template <int MR, int NT, bool kBlockScales>
void tiles_tokens(const ek_q4x4* w, int64_t t, const int8_t* xq, const float* xs, const int32_t* xbsum, float* y,
                  int64_t ldy) {
    const int64_t k = w->k, nb = k / EK_Q4_BLOCK;
    const __m512i nib = _mm512_set1_epi8(EK_Q4_LO_MASK);
    const uint8_t* qs = w->qs + t * ek_q4_ldb(w) * EK_Q4X4_TILE_QS_BYTES;
    const uint16_t* ds = w->d + t * ek_q4_ldb(w) * EK_Q4X4_ROWS;
    const int64_t tile_qs = ek_q4_ldb(w) * EK_Q4X4_TILE_QS_BYTES, tile_d = ek_q4_ldb(w) * EK_Q4X4_ROWS;
    // streaming from DRAM (a model's weights do not fit in cache): one core keeps too few misses in flight unless
    // asked early. 8 KB ahead took SmolLM2-135M decode from 60 to ~105 tok/s on 2 Xeon cores (4 KB and 16 KB: less);
    // there a tile (K <= 1536) is shorter than 8 KB, so the prefetches run ahead through the next tiles. With long
    // tiles (K >= 4096) each of the NT streams would keep its own 8 KB in flight, more than L1 holds beside the
    // activations: measured 10-30 % slower on 4096 x 11008, so the hardware prefetcher is left alone there.
    // Prefill's tokens hide the latency.
    const bool prefetch = MR == 1 && tile_qs < kPrefetchBytes;
    __m512 acc[NT][MR];
    for (int u = 0; u < NT; ++u)
        for (int i = 0; i < MR; ++i) acc[u][i] = _mm512_setzero_ps();
    for (int64_t j = 0; j < nb; ++j) {
        __m512i lo[NT], hi[NT];
        __m512 d[NT];
        for (int u = 0; u < NT; ++u) {
            const uint8_t* b = qs + u * tile_qs + j * EK_Q4X4_TILE_QS_BYTES;
            if (prefetch) _mm_prefetch(reinterpret_cast<const char*>(b) + kPrefetchBytes, _MM_HINT_T0);
            const __m512i v = _mm512_loadu_si512(b);
            lo[u] = _mm512_and_si512(v, nib);                         // codes 0..15 of each row
            hi[u] = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);  // codes 16..31
            d[u] = load_scales(ds + u * tile_d + j * EK_Q4X4_ROWS);
        }
        for (int i = 0; i < MR; ++i) {
            const int8_t* xb = xq + i * k + j * EK_Q4_BLOCK;
            const __m512i xlo = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb)));
            const __m512i xhi = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 16)));
            // codes are q - 8: take 8 * (its activations' sum) off every lane, the same four lanes for each row
            const __m128i ls = _mm_loadu_si128(reinterpret_cast<const __m128i*>(xbsum + (i * nb + j) * 4));
            const __m512i off = _mm512_slli_epi32(_mm512_broadcast_i32x4(ls), 3);
            for (int u = 0; u < NT; ++u) {
                __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[u], xlo);  // 4 products per lane
                dot = _mm512_dpbusd_epi32(dot, hi[u], xhi);
                const __m512 dx = kBlockScales ? _mm512_mul_ps(d[u], _mm512_set1_ps(xs[i * nb + j])) : d[u];
                acc[u][i] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(dot, off)), dx, acc[u][i]);
            }
        }
    }
    for (int u = 0; u < NT; ++u) {
        const int64_t row0 = (t + u) * EK_Q4X4_ROWS;
        const int rows = (int)(w->n - row0 < EK_Q4X4_ROWS ? w->n - row0 : EK_Q4X4_ROWS);
        const __mmask8 keep = (__mmask8)((1u << rows) - 1);
        for (int i = 0; i < MR; ++i) {
            const __m128 rows = reduce_rows(acc[u][i]);
            const __m128 out = kBlockScales ? rows : _mm_mul_ps(rows, _mm_set1_ps(xs[i]));
            _mm_mask_storeu_ps(y + i * ldy + row0, keep, out);  // padding rows are never written
        }
    }
}

template <int MR, bool kBlockScales>
void tokens_all_tiles(const ek_q4x4* w, int64_t t0, int64_t t1, const int8_t* xq, const float* xs,
                      const int32_t* xbsum, float* y, int64_t ldy) {
    constexpr int NT = MR == 1 ? 4 : (MR == 3 ? 1 : 2);
    int64_t t = t0;
    for (; t + NT <= t1; t += NT) tiles_tokens<MR, NT, kBlockScales>(w, t, xq, xs, xbsum, y, ldy);
    for (; t < t1; ++t) tiles_tokens<MR, 1, kBlockScales>(w, t, xq, xs, xbsum, y, ldy);
}

template <bool kBlockScales>
void gemm(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m, float* y,
          int64_t ldy, int64_t t0, int64_t t1) {
    const int64_t nb = w->k / EK_Q4_BLOCK;
    const int64_t xs_per_token = kBlockScales ? nb : 1;
    // tokens in groups of four (prefill): a tile block is unpacked once per group and meets two tiles' worth of
    // broadcast activations (groups of six measured no faster)
    int64_t i = 0;
    for (; i + 4 <= m; i += 4) {
        tokens_all_tiles<4, kBlockScales>(w, t0, t1, xq + i * w->k, xs + i * xs_per_token, xbsum + i * nb * 4,
                                          y + i * ldy, ldy);
    }
    const int64_t r = m - i;
    const int8_t* xr = xq + i * w->k;
    const float* sr = xs + i * xs_per_token;
    const int32_t* br = xbsum + i * nb * 4;
    if (r == 3) tokens_all_tiles<3, kBlockScales>(w, t0, t1, xr, sr, br, y + i * ldy, ldy);
    if (r == 2) tokens_all_tiles<2, kBlockScales>(w, t0, t1, xr, sr, br, y + i * ldy, ldy);
    if (r == 1) tokens_all_tiles<1, kBlockScales>(w, t0, t1, xr, sr, br, y + i * ldy, ldy);
}

}  // namespace

extern "C" void ek_gemm_q4x4_q8__avx512vnni(const ek_q4x4* w, const int8_t* xq, const float* xs,
                                            const int32_t* xbsum, int64_t m, float* y, int64_t ldy, int64_t t0,
                                            int64_t t1) {
    gemm<false>(w, xq, xs, xbsum, m, y, ldy, t0, t1);
}

extern "C" void ek_gemm_q4x4_q8b__avx512vnni(const ek_q4x4* w, const int8_t* xq, const float* xs,
                                             const int32_t* xbsum, int64_t m, float* y, int64_t ldy, int64_t t0,
                                             int64_t t1) {
    gemm<true>(w, xq, xs, xbsum, m, y, ldy, t0, t1);
}
