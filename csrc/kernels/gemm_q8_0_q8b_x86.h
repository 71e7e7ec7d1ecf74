// The integer Q8_0 head kernel's loops for x86 (kernels.h: ek_gemm_q8_0_q8b), shared by the AVX2 and the AVX-512
// VNNI files, which differ only in the 32-byte dot product (Dot::lanes): maddubs + madd, or one 256-bit vpdpbusd.
// Internal to csrc/kernels; include it from exactly one file per ISA, compiled with that ISA's flags.
//
// Both take the activations as |x| (unsigned) and the weights with x's sign moved onto them (vpsignb), so the
// unsigned x signed instructions give the signed products; codes are in -127..127, so |x| fits and no pair of
// products saturates maddubs' int16 (2 x 127 x 127 < 32767). Lane l of either dot is the sum of bytes 4l..4l+3,
// the contract's lanes; each lane keeps its own fma chain over the blocks, so the result is the scalar's bits.
#ifndef EDGEKIT_KERNELS_GEMM_Q8_0_Q8B_X86_H
#define EDGEKIT_KERNELS_GEMM_Q8_0_Q8B_X86_H

#include <assert.h>
#include <immintrin.h>
#include <stdint.h>

#include "edgekit/kernels.h"

namespace ek_q8b_x86 {

// 8 KB ahead, into L2 (prefetcht1): on a Zen 4 EPYC the head streamed at about half of a plain read's rate with
// prefetcht0 and at 0.7-0.95 of it with prefetcht1 (4 x 30 MB heads, alternated in one process; BENCHMARKS section
// 4, "Prefetching into L2")
constexpr int64_t kPrefetchBytes = 8192;

// ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)): the contract's tree
inline float reduce8(__m256 acc) {
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(s2) + _mm_cvtss_f32(_mm_shuffle_ps(s2, s2, 1));
}

// fp32(d) * xs, broadcast: the block's scale, rounded once as the contract says
inline __m256 block_scale(const uint16_t* d, const float* xs) { return _mm256_set1_ps(_cvtsh_ss(*d) * *xs); }

// R consecutive rows from r for tokens i < m: the rows share each load of the activations, and the token loop sits
// inside, so with several tokens the R rows (R x ldq bytes) stay in L1 while every token meets them.
template <class Dot, int R>
void rows_pass(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq, const float* xs, int64_t m,
               int64_t k, float* y, int64_t ldy, int64_t r) {
    const int64_t nb = k / 32, ldd = ldq / 32;
    const int8_t* w = q + r * ldq;
    // one stream: the lines of the pass's rows (consecutive in memory) asked for early, in address order
    const char* ahead = reinterpret_cast<const char*>(w) + kPrefetchBytes;
    for (int64_t o = 0; o < R * ldq; o += 64) _mm_prefetch(ahead + o, _MM_HINT_T1);
    for (int64_t i = 0; i < m; ++i) {
        const int8_t* xi = xq + i * k;
        const float* si = xs + i * nb;
        __m256 acc[R];
#pragma GCC unroll 2
        for (int j = 0; j < R; ++j) acc[j] = _mm256_setzero_ps();
        for (int64_t b = 0; b < nb; ++b) {
            const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xi + 32 * b));
            const __m256i a = _mm256_sign_epi8(x, x);  // |x|: one op, cheaper than a load of a copy
            // unrolled so that acc[] stays in registers (as in the q4x16 kernel)
#pragma GCC unroll 2
            for (int j = 0; j < R; ++j) {
                const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + j * ldq + 32 * b));
                const __m256 p = _mm256_cvtepi32_ps(Dot::lanes(a, _mm256_sign_epi8(c, x)));
                acc[j] = _mm256_fmadd_ps(p, block_scale(d + (r + j) * ldd + b, si + b), acc[j]);
            }
        }
#pragma GCC unroll 2
        for (int j = 0; j < R; ++j) y[i * ldy + r + j] = reduce8(acc[j]);
    }
}

// Rows [r0, r1) for tokens i < m: two rows per pass, a last odd row alone.
template <class Dot>
void gemm(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq, const float* xs, int64_t m, int64_t k,
          float* y, int64_t ldy, int64_t r0, int64_t r1) {
    assert(k % 32 == 0 && ldq % 32 == 0 && ldq >= k && r0 <= r1);
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) rows_pass<Dot, 2>(q, d, ldq, xq, xs, m, k, y, ldy, r);
    if (r < r1) rows_pass<Dot, 1>(q, d, ldq, xq, xs, m, k, y, ldy, r);
}

}  // namespace ek_q8b_x86

#endif  // EDGEKIT_KERNELS_GEMM_Q8_0_Q8B_X86_H
