// Agile-Quant's packed multiplier for W4A4 on AVX2: two signed 4-bit weights share one 16-bit lane.
//
// For two rows of a tile at position k, the lane holds w0 + 256 * w1 (w = q - 8, -8..7); one vpmullw by the int4
// activation a (-7..7) gives w0 * a + 256 * w1 * a exactly, since each product lies in -56..56. The low byte,
// sign-extended, is w0 * a and the rest, shifted down, is w1 * a; both accumulate in 16-bit lanes (guard bits to
// spare for the 32 positions of a group) and widen once per block. The lane words are built once per tile block
// and shared by up to four tokens. Same contract as ek_gemm_q4x4_q8 (kernels.h) for activations in -7..7.
#include <immintrin.h>
#include <stdint.h>

#include "edgekit/kernels.h"

namespace {

// rows (a, b) of a 256-bit register [row a codes | row b codes] (one 128-bit lane each) → w_a + 256 * w_b per k
inline __m256i pair_words(__m256i codes) {
    const __m256i w = _mm256_sub_epi8(codes, _mm256_set1_epi8(EK_Q4_SYM_ZERO));
    const __m256i wa = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(w));
    const __m256i wb = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(w, 1));
    return _mm256_add_epi16(wa, _mm256_slli_epi16(wb, 8));
}

// w_a * a and w_b * a, accumulated into the two rows' 16-bit sums
inline void mul_split(__m256i words, __m256i a16, __m256i* sa, __m256i* sb) {
    const __m256i p = _mm256_mullo_epi16(words, a16);
    const __m256i lo = _mm256_srai_epi16(_mm256_slli_epi16(p, 8), 8);  // sign-extended low byte: w_a * a
    *sa = _mm256_add_epi16(*sa, lo);
    *sb = _mm256_add_epi16(*sb, _mm256_srai_epi16(_mm256_sub_epi16(p, lo), 8));  // w_b * a
}

inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

template <int MR>
void tile_tokens(const ek_q4x4* w, int64_t t, const int8_t* xq, const float* xs, float* y, int64_t ldy) {
    const int64_t k = w->k, nb = k / EK_Q4_BLOCK;
    const __m256i nib = _mm256_set1_epi8(EK_Q4_LO_MASK);
    const __m256i ones = _mm256_set1_epi16(1);
    const uint8_t* qs = w->qs + t * ek_q4_ldb(w) * EK_Q4X4_TILE_QS_BYTES;
    const uint16_t* ds = w->d + t * ek_q4_ldb(w) * EK_Q4X4_ROWS;
    __m256 acc[MR][EK_Q4X4_ROWS];
    for (int i = 0; i < MR; ++i)
        for (int r = 0; r < EK_Q4X4_ROWS; ++r) acc[i][r] = _mm256_setzero_ps();
    for (int64_t j = 0; j < nb; ++j) {
        const uint8_t* b = qs + j * EK_Q4X4_TILE_QS_BYTES;
        const __m256i v01 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b));
        const __m256i v23 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + 32));
        // lane words for positions 0..15 (low nibbles) and 16..31 (high nibbles) of rows (0,1) and (2,3)
        const __m256i w01lo = pair_words(_mm256_and_si256(v01, nib));
        const __m256i w01hi = pair_words(_mm256_and_si256(_mm256_srli_epi16(v01, 4), nib));
        const __m256i w23lo = pair_words(_mm256_and_si256(v23, nib));
        const __m256i w23hi = pair_words(_mm256_and_si256(_mm256_srli_epi16(v23, 4), nib));
        const __m128 d4 = _mm_cvtph_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(ds + j * EK_Q4X4_ROWS)));
        const __m256 d[EK_Q4X4_ROWS] = {_mm256_set1_ps(_mm_cvtss_f32(d4)),
                                        _mm256_set1_ps(_mm_cvtss_f32(_mm_shuffle_ps(d4, d4, 1))),
                                        _mm256_set1_ps(_mm_cvtss_f32(_mm_shuffle_ps(d4, d4, 2))),
                                        _mm256_set1_ps(_mm_cvtss_f32(_mm_shuffle_ps(d4, d4, 3)))};
        for (int i = 0; i < MR; ++i) {
            const int8_t* xb = xq + i * k + j * EK_Q4_BLOCK;
            const __m256i alo = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb)));
            const __m256i ahi = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xb + 16)));
            __m256i s[EK_Q4X4_ROWS] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                                       _mm256_setzero_si256()};
            mul_split(w01lo, alo, &s[0], &s[1]);
            mul_split(w01hi, ahi, &s[0], &s[1]);
            mul_split(w23lo, alo, &s[2], &s[3]);
            mul_split(w23hi, ahi, &s[2], &s[3]);
            for (int r = 0; r < EK_Q4X4_ROWS; ++r)  // widen once per block, then scale
                acc[i][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(s[r], ones)), d[r], acc[i][r]);
        }
    }
    const int64_t rows = w->n - t * EK_Q4X4_ROWS < EK_Q4X4_ROWS ? w->n - t * EK_Q4X4_ROWS : EK_Q4X4_ROWS;
    for (int i = 0; i < MR; ++i)
        for (int64_t r = 0; r < rows; ++r) y[i * ldy + t * EK_Q4X4_ROWS + r] = hsum8(acc[i][r]) * xs[i];
}

}  // namespace

extern "C" void ek_gemm_q4x4_q4__avx2(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                      int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1) {
    (void)xbsum;  // signed lanes: no offset to take back out
    for (int64_t t = t0; t < t1; ++t) {
        int64_t i = 0;
        for (; i + 4 <= m; i += 4) tile_tokens<4>(w, t, xq + i * w->k, xs + i, y + i * ldy, ldy);
        switch (m - i) {
            case 3: tile_tokens<3>(w, t, xq + i * w->k, xs + i, y + i * ldy, ldy); break;
            case 2: tile_tokens<2>(w, t, xq + i * w->k, xs + i, y + i * ldy, ldy); break;
            case 1: tile_tokens<1>(w, t, xq + i * w->k, xs + i, y + i * ldy, ldy); break;
            default: break;
        }
    }
}
