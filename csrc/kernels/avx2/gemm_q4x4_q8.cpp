// W4A8 matmul on the q4x4 layout, AVX2 (kernels.h has the formula; scalar/gemm_q4x4_q8.cpp the reference).
//
// A tile block is two 256-bit loads (rows 0-1, rows 2-3; one row per 128-bit lane). Low nibbles are codes 0..15,
// high nibbles codes 16..31; vpmaddubsw multiplies the unsigned codes with the matching 16 activations (broadcast to
// both lanes) into int16 pairs (at most 2 * 2 * 15 * 128 in magnitude: no saturation), vpmaddwd widens to four
// int32 per row, and 8 * (the activations each lane met) comes off that lane for the -8 code offset. Up to
// four tokens share each unpacked block.
#include <immintrin.h>
#include <stdint.h>

#include "edgekit/kernels.h"

namespace {

// [d0 d1 d2 d3] fp16 → {d0 x4, d1 x4} and {d2 x4, d3 x4}
inline void load_scales(const uint16_t* d, __m256* d01, __m256* d23) {
    const __m128 d4 = _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(d)));
    const __m256 both = _mm256_castps128_ps256(d4);
    *d01 = _mm256_permutevar8x32_ps(both, _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1));
    *d23 = _mm256_permutevar8x32_ps(both, _mm256_setr_epi32(2, 2, 2, 2, 3, 3, 3, 3));
}

inline __m256i block_dot(__m256i lo, __m256i hi, __m256i xlo, __m256i xhi, __m256i ones, __m256i off) {
    const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, xlo), _mm256_maddubs_epi16(hi, xhi));
    return _mm256_sub_epi32(_mm256_madd_epi16(p, ones), off);
}

constexpr int64_t kPrefetchBytes = 8192;

// kBlockScales: xs holds one scale per (token, block) (ek_gemm_q4x4_q8b) instead of one per token.
template <int MR, bool kBlockScales>
void tile_tokens(const ek_q4x4* w, int64_t t, const int8_t* xq, const float* xs, const int32_t* xbsum, float* y,
                 int64_t ldy) {
    const int64_t k = w->k, nb = k / EK_Q4_BLOCK;
    const __m256i nib = _mm256_set1_epi8(EK_Q4_LO_MASK);
    const __m256i ones = _mm256_set1_epi16(1);
    const uint8_t* qs = w->qs + t * ek_q4_ldb(w) * EK_Q4X4_TILE_QS_BYTES;
    const uint16_t* ds = w->d + t * ek_q4_ldb(w) * EK_Q4X4_ROWS;
    __m256 acc01[MR], acc23[MR];
    for (int i = 0; i < MR; ++i) acc01[i] = acc23[i] = _mm256_setzero_ps();
    for (int64_t j = 0; j < nb; ++j) {
        const uint8_t* b = qs + j * EK_Q4X4_TILE_QS_BYTES;
        // decode streams the weights from DRAM: ask for lines 8 KB ahead, into L2 (prefetcht1: +5-8 % decode over
        // prefetcht0 on a Zen 4 with these kernels forced, BENCHMARKS section 4 "Prefetching into L2")
        if (MR == 1) _mm_prefetch(reinterpret_cast<const char*>(b) + kPrefetchBytes, _MM_HINT_T1);
        const __m256i v01 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
        const __m256i v23 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
        const __m256i lo01 = _mm256_and_si256(v01, nib), hi01 = _mm256_and_si256(_mm256_srli_epi16(v01, 4), nib);
        const __m256i lo23 = _mm256_and_si256(v23, nib), hi23 = _mm256_and_si256(_mm256_srli_epi16(v23, 4), nib);
        __m256 d01, d23;
        load_scales(ds + j * EK_Q4X4_ROWS, &d01, &d23);
        for (int i = 0; i < MR; ++i) {
            const int8_t* xb = xq + i * k + j * EK_Q4_BLOCK;
            const __m256i xlo = _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb)));
            const __m256i xhi =
                _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 16)));
            // codes are q - 8: 8 * (the activations each lane met) comes off that lane, for both rows of a register
            const __m128i ls = _mm_loadu_si128(reinterpret_cast<const __m128i*>(xbsum + (i * nb + j) * 4));
            const __m256i off = _mm256_slli_epi32(_mm256_broadcastsi128_si256(ls), 3);
            __m256 dx01 = d01, dx23 = d23;
            if (kBlockScales) {
                const __m256 sx = _mm256_set1_ps(xs[i * nb + j]);
                dx01 = _mm256_mul_ps(d01, sx);
                dx23 = _mm256_mul_ps(d23, sx);
            }
            acc01[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_dot(lo01, hi01, xlo, xhi, ones, off)), dx01, acc01[i]);
            acc23[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_dot(lo23, hi23, xlo, xhi, ones, off)), dx23, acc23[i]);
        }
    }
    const int64_t rows = w->n - t * EK_Q4X4_ROWS < EK_Q4X4_ROWS ? w->n - t * EK_Q4X4_ROWS : EK_Q4X4_ROWS;
    for (int i = 0; i < MR; ++i) {
        const __m256 h = _mm256_hadd_ps(acc01[i], acc23[i]);  // [r0ab r0cd r2ab r2cd | r1ab r1cd r3ab r3cd]
        const __m128 s = _mm_hadd_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));  // [r0 r2 r1 r3]
        const __m128 rows4 = _mm_shuffle_ps(s, s, _MM_SHUFFLE(3, 1, 2, 0));
        alignas(16) float out[4];
        _mm_store_ps(out, kBlockScales ? rows4 : _mm_mul_ps(rows4, _mm_set1_ps(xs[i])));
        for (int64_t r = 0; r < rows; ++r) y[i * ldy + t * EK_Q4X4_ROWS + r] = out[r];
    }
}

template <bool kBlockScales>
void gemm(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m, float* y,
          int64_t ldy, int64_t t0, int64_t t1) {
    const int64_t nb = w->k / EK_Q4_BLOCK;
    const int64_t ns = kBlockScales ? nb : 1;  // scales per token
    for (int64_t t = t0; t < t1; ++t) {
        int64_t i = 0;
        for (; i + 4 <= m; i += 4) {
            tile_tokens<4, kBlockScales>(w, t, xq + i * w->k, xs + i * ns, xbsum + i * nb * 4, y + i * ldy, ldy);
        }
        const int8_t* xr = xq + i * w->k;
        const float* sr = xs + i * ns;
        const int32_t* br = xbsum + i * nb * 4;
        switch (m - i) {
            case 3: tile_tokens<3, kBlockScales>(w, t, xr, sr, br, y + i * ldy, ldy); break;
            case 2: tile_tokens<2, kBlockScales>(w, t, xr, sr, br, y + i * ldy, ldy); break;
            case 1: tile_tokens<1, kBlockScales>(w, t, xr, sr, br, y + i * ldy, ldy); break;
            default: break;
        }
    }
}

}  // namespace

extern "C" void ek_gemm_q4x4_q8__avx2(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                      int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1) {
    gemm<false>(w, xq, xs, xbsum, m, y, ldy, t0, t1);
}

extern "C" void ek_gemm_q4x4_q8b__avx2(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                       int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1) {
    gemm<true>(w, xq, xs, xbsum, m, y, ldy, t0, t1);
}
