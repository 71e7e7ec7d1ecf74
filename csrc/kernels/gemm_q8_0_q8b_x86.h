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

constexpr int64_t kPrefetchBytes = 8192;  // as the float head kernel: 8 KB ahead streams DRAM best

// ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7)): the contract's tree
inline float reduce8(__m256 acc) {
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(s2) + _mm_cvtss_f32(_mm_shuffle_ps(s2, s2, 1));
}

// fp32(d) * xs, broadcast: the block's scale, rounded once as the contract says
inline __m256 block_scale(const uint16_t* d, const float* xs) { return _mm256_set1_ps(_cvtsh_ss(*d) * *xs); }

// Rows [r0, r1) for tokens i < m. Two rows per pass share each load of the activations; the token loop sits inside
// the pass, so with several tokens the pass's two rows (2 x ldq bytes) stay in L1 while every token meets them.
template <class Dot>
void gemm(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq, const float* xs, int64_t m, int64_t k,
          float* y, int64_t ldy, int64_t r0, int64_t r1) {
    assert(k % 32 == 0 && ldq % 32 == 0 && ldq >= k && r0 <= r1);
    const int64_t nb = k / 32, ldd = ldq / 32;
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) {
        // one stream: the lines of both rows (consecutive in memory) asked for early, in address order
        const char* ahead = reinterpret_cast<const char*>(q + r * ldq) + kPrefetchBytes;
        for (int64_t o = 0; o < 2 * ldq; o += 64) _mm_prefetch(ahead + o, _MM_HINT_T0);
        const int8_t* w0 = q + r * ldq;
        const int8_t* w1 = w0 + ldq;
        for (int64_t i = 0; i < m; ++i) {
            const int8_t* xi = xq + i * k;
            const float* si = xs + i * nb;
            __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
            for (int64_t j = 0; j < nb; ++j) {
                const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xi + 32 * j));
                const __m256i a = _mm256_sign_epi8(x, x);  // |x|: one op, cheaper than a load of a copy
                const __m256i b0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0 + 32 * j));
                const __m256i b1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w1 + 32 * j));
                const __m256 p0 = _mm256_cvtepi32_ps(Dot::lanes(a, _mm256_sign_epi8(b0, x)));
                const __m256 p1 = _mm256_cvtepi32_ps(Dot::lanes(a, _mm256_sign_epi8(b1, x)));
                acc0 = _mm256_fmadd_ps(p0, block_scale(d + r * ldd + j, si + j), acc0);
                acc1 = _mm256_fmadd_ps(p1, block_scale(d + (r + 1) * ldd + j, si + j), acc1);
            }
            y[i * ldy + r] = reduce8(acc0);
            y[i * ldy + r + 1] = reduce8(acc1);
        }
    }
    for (; r < r1; ++r) {
        const int8_t* w0 = q + r * ldq;
        for (int64_t i = 0; i < m; ++i) {
            __m256 acc = _mm256_setzero_ps();
            for (int64_t j = 0; j < nb; ++j) {
                const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + i * k + 32 * j));
                const __m256i a = _mm256_sign_epi8(x, x);
                const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w0 + 32 * j));
                const __m256 p = _mm256_cvtepi32_ps(Dot::lanes(a, _mm256_sign_epi8(b, x)));
                acc = _mm256_fmadd_ps(p, block_scale(d + r * ldd + j, xs + i * nb + j), acc);
            }
            y[i * ldy + r] = reduce8(acc);
        }
    }
}

}  // namespace ek_q8b_x86

#endif  // EDGEKIT_KERNELS_GEMM_Q8_0_Q8B_X86_H
