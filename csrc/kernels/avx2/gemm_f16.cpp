// AVX2 + F16C + FMA fp16-row and Q8_0-row kernels, bit-identical to the scalar reference (kernels.h gives the
// order). Both formats run the same loops; a row type (F16Rows, Q8Rows) says how 8 values of a row become floats.
//
// gemm: the 16 running sums of the contract are two 8-lane accumulators per output (lanes c mod 16 < 8 and >= 8);
// acc0 + acc1 is the first level of the tree, the 128-bit halves the second, movehl the third. With one token
// (decode: memory-bound) weight rows are converted on the fly, two rows sharing each load of x; with several tokens
// four rows are converted once into a small buffer and reused for every token.
#include <assert.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "edgekit/kernels.h"

namespace {

constexpr int64_t kPrefetchBytes = 8192;  // measured: 8 KB ahead streams DRAM best

inline __m256 load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }

// fp16 rows: value c of row r is fp32(w[r * ld + c])
struct F16Rows {
    const uint16_t* w;
    int64_t ld;
    static constexpr int64_t kBytes = 2;  // bytes per value
    const void* addr(int64_t r, int64_t c) const { return w + r * ld + c; }
    __m256 scale(int64_t, int64_t) const { return _mm256_setzero_ps(); }  // fp16 rows have none
    __m256 load8(int64_t r, int64_t c, __m256) const { return load_f16(w + r * ld + c); }
    __m256 load8(int64_t r, int64_t c) const { return load_f16(w + r * ld + c); }
    float value(int64_t r, int64_t c) const { return ek_fp16_to_fp32(w[r * ld + c]); }
};

// Q8_0 rows: value c of row r is float(q) * fp32(d of its block of 32), a product exact in float32
struct Q8Rows {
    const int8_t* q;
    const uint16_t* d;
    int64_t ld;
    static constexpr int64_t kBytes = 1;
    const void* addr(int64_t r, int64_t c) const { return q + r * ld + c; }
    // the block scale of value c, broadcast: F16C converts it once per block (a call to the portable converter
    // for every 8 values cost more than the bytes the 8-bit table saves)
    __m256 scale(int64_t r, int64_t c) const { return _mm256_set1_ps(_cvtsh_ss(d[r * (ld / 32) + c / 32])); }
    __m256 load8(int64_t r, int64_t c, __m256 s) const {
        const __m128i raw = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + r * ld + c));
        return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(raw)), s);  // exact: 8 x 11 bits
    }
    __m256 load8(int64_t r, int64_t c) const { return load8(r, c, scale(r, c)); }
    float value(int64_t r, int64_t c) const {
        return (float)q[r * ld + c] * ek_fp16_to_fp32(d[r * (ld / 32) + c / 32]);
    }
};

// s_l += s_{l+8}, then the 4- and 2-lane levels and s_0 + s_1 (the contract's tree).
inline float reduce16(__m256 acc0, __m256 acc1) {
    const __m256 s8 = _mm256_add_ps(acc0, acc1);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    return _mm_cvtss_f32(s2) + _mm_cvtss_f32(_mm_shuffle_ps(s2, s2, 1));
}

template <class Rows>
float tail(const Rows& w, int64_t r, const float* x, int64_t k16, int64_t k, float tot) {
    for (int64_t c = k16; c < k; ++c) tot = std::fma(w.value(r, c), x[c], tot);
    return tot;
}

// One token against rows [r0, r1): two rows per pass share the x loads. (Four rows need ten live registers plus
// four row pointers, and GCC then spills accumulators to the stack, which puts a store-load on every FMA chain.)
template <class Rows>
void gemv(const Rows& w, const float* x, int64_t k, float* y, int64_t r0, int64_t r1) {
    const int64_t k16 = k - k % 16;
    int64_t r = r0;
    for (; r + 2 <= r1; r += 2) {
        __m256 a0 = _mm256_setzero_ps(), b0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), b1 = _mm256_setzero_ps();
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        // one core keeps too few misses in flight to stream DRAM at full speed: ask early, kPrefetchBytes ahead,
        // for the lines of both rows, in address order. Per-row prefetches inside the loop below made two
        // interleaved streams, and on a Zen 4 EPYC the head then read ~9 GB/s per thread against ~13.5 with
        // this one stream (the 49152 x 576 Q8_0 head, one thread)
        for (int j = 0; j < 2; ++j) {
            const char* row = static_cast<const char*>(w.addr(r + j, 0)) + kPrefetchBytes;
            for (int64_t o = 0; o < k * Rows::kBytes; o += 64) _mm_prefetch(row + o, _MM_HINT_T0);
        }
        for (int64_t c = 0; c < k16; c += 16) {
            if (c % 32 == 0) s0 = w.scale(r, c), s1 = w.scale(r + 1, c);  // 16 values never straddle a block
            const __m256 xa = _mm256_loadu_ps(x + c), xb = _mm256_loadu_ps(x + c + 8);
            a0 = _mm256_fmadd_ps(w.load8(r, c, s0), xa, a0);
            b0 = _mm256_fmadd_ps(w.load8(r, c + 8, s0), xb, b0);
            a1 = _mm256_fmadd_ps(w.load8(r + 1, c, s1), xa, a1);
            b1 = _mm256_fmadd_ps(w.load8(r + 1, c + 8, s1), xb, b1);
        }
        y[r] = tail(w, r, x, k16, k, reduce16(a0, b0));
        y[r + 1] = tail(w, r + 1, x, k16, k, reduce16(a1, b1));
    }
    for (; r < r1; ++r) {
        __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
        for (int64_t c = 0; c < k16; c += 16) {
            a = _mm256_fmadd_ps(w.load8(r, c), _mm256_loadu_ps(x + c), a);
            b = _mm256_fmadd_ps(w.load8(r, c + 8), _mm256_loadu_ps(x + c + 8), b);
        }
        y[r] = tail(w, r, x, k16, k, reduce16(a, b));
    }
}

template <class Rows>
void gemm(const Rows& w, const float* x, int64_t ldx, int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0,
          int64_t r1) {
    if (m == 1) {
        gemv(w, x, k, y, r0, r1);
        return;
    }
    const int64_t k16 = k - k % 16;
    thread_local std::vector<float> buf;  // up to four rows converted to fp32, reused by every token
    if ((int64_t)buf.size() < 4 * k16) buf.resize((size_t)(4 * k16));
    for (int64_t r = r0; r < r1; r += 4) {
        const int rows = (int)std::min<int64_t>(4, r1 - r);
        for (int j = 0; j < rows; ++j) {
            __m256 sc = _mm256_setzero_ps();
            for (int64_t c = 0; c < k16; c += 8) {
                if (c % 32 == 0) sc = w.scale(r + j, c);
                _mm256_storeu_ps(buf.data() + j * k16 + c, w.load8(r + j, c, sc));
            }
        }
        for (int64_t i = 0; i < m; ++i) {
            const float* xi = x + i * ldx;
            for (int j = 0; j < rows; ++j) {
                const float* wf = buf.data() + j * k16;
                __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
                for (int64_t c = 0; c < k16; c += 16) {
                    a = _mm256_fmadd_ps(_mm256_loadu_ps(wf + c), _mm256_loadu_ps(xi + c), a);
                    b = _mm256_fmadd_ps(_mm256_loadu_ps(wf + c + 8), _mm256_loadu_ps(xi + c + 8), b);
                }
                y[i * ldy + r + j] = tail(w, r + j, xi, k16, k, reduce16(a, b));
            }
        }
    }
}

}  // namespace

extern "C" void ek_gemm_f16_f32__avx2(const uint16_t* w, int64_t ldw, const float* x, int64_t ldx, int64_t m,
                                      int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1) {
    assert(k >= 0 && ldw >= k && ldx >= k && r0 <= r1);
    gemm(F16Rows{w, ldw}, x, ldx, m, k, y, ldy, r0, r1);
}

extern "C" void ek_gemm_q8_0_f32__avx2(const int8_t* q, const uint16_t* d, int64_t ldq, const float* x, int64_t ldx,
                                       int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1) {
    assert(k % 32 == 0 && ldq % 32 == 0 && ldq >= k && ldx >= k && r0 <= r1);
    gemm(Q8Rows{q, d, ldq}, x, ldx, m, k, y, ldy, r0, r1);
}
