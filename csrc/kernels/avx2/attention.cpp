// AVX2 + F16C + FMA fused attention kernel, bit-identical to the scalar reference (kernels.h).
//
// Scores: keys are lanes (the cache holds them transposed), so each score is one lane's fma chain over the head
// dimension; up to six query rows of the group share every converted key vector, 16 keys (two registers) at a
// time: twelve independent chains, 12 fma per 8 loads (four rows: eight chains, 8 per 6; six rows took 0.82x the
// time of four on the T5 encoder's calls, AMD EPYC Zen 3, one thread); one or two rows (decode) take 32 keys (four
// registers) at a time instead. The score pass also adds the bias and keeps
// each row's maximum, so the softmax reads the scores twice instead of four times. Values: 16 output dimensions
// (two registers; 32 for one or two rows) of up to six rows per pass over the probabilities, each converted value
// vector shared by them.
#include <assert.h>
#include <immintrin.h>
#include <math.h>

#include <algorithm>
#include <vector>

#include "../attention_common.h"
#include "edgekit/kernels.h"
#include "exp_avx2.h"

namespace {

inline __m256 load_f16(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i*)p)); }

inline float hmax(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
    return _mm_cvtss_f32(m);
}

// Keys per pass: 8 * KB. A pass is a chain of hd fma per accumulator, so one or two rows (decode: a query row's
// heads of one KV head, split over the threads) take 32 keys per pass to keep eight chains in flight, and read 64
// contiguous bytes of each of the hd key rows (which lie ldk apart) per visit instead of 32.
template <int HB>
constexpr int keys_regs() { return HB <= 2 ? 4 : 2; }

template <int HB, int KB>
void scores_pass(const float* q, int64_t hd, const uint16_t* kt, int64_t ldk, const uint16_t* v, int64_t ldv,
                 int64_t n, int64_t t, __m256 sc, const float* bias, int64_t ldb, float* p, __m256* mv) {
    __m256 a[HB][KB];
    for (int h = 0; h < HB; ++h)
        for (int b = 0; b < KB; ++b) a[h][b] = _mm256_setzero_ps();
    for (int64_t c = 0; c < hd; ++c) {
        if (HB <= 3) {
            // few rows (decode): as the AVX-512 file, the key row's line 64 slots ahead (32 and 96 were slower on a
            // Zen 4) and the values of this pass's keys asked for into L2 (prefetches past the cache's end do not
            // fault): decode attention 1.1-1.4x faster there with these kernels
            _mm_prefetch(reinterpret_cast<const char*>(kt + c * ldk + t + 64), _MM_HINT_T1);
            if (c < 8 * KB) {
                const char* vr = reinterpret_cast<const char*>(v + (t + c) * ldv);
                for (int64_t o = 0; o < 2 * hd; o += 64) _mm_prefetch(vr + o, _MM_HINT_T1);
            }
        }
        __m256 k[KB];
        for (int b = 0; b < KB; ++b) k[b] = load_f16(kt + c * ldk + t + 8 * b);
        for (int h = 0; h < HB; ++h) {
            const __m256 qc = _mm256_broadcast_ss(q + h * hd + c);
            for (int b = 0; b < KB; ++b) a[h][b] = _mm256_fmadd_ps(qc, k[b], a[h][b]);
        }
    }
    for (int h = 0; h < HB; ++h) {
        for (int b = 0; b < KB; ++b) {
            __m256 s0 = _mm256_mul_ps(a[h][b], sc);
            if (bias) s0 = _mm256_add_ps(s0, _mm256_loadu_ps(bias + h * ldb + t + 8 * b));
            mv[h] = _mm256_max_ps(mv[h], s0);
            _mm256_storeu_ps(p + h * n + t + 8 * b, s0);
        }
    }
}

// scores of HB heads for keys [0, n): p[h * n + t] = (sum_c q[h, c] * k[c, t]) * scale (+ bias[h * n + t]), and
// each head's maximum mx[h] (exact, so in any order)
template <int HB>
void scores(const float* q, int64_t hd, const uint16_t* kt, int64_t ldk, const uint16_t* v, int64_t ldv, int64_t n,
            float scale, const float* bias, int64_t ldb, float* p, float* mx) {
    constexpr int KB = keys_regs<HB>();
    const __m256 sc = _mm256_set1_ps(scale);
    __m256 mv[HB];
    for (int h = 0; h < HB; ++h) mv[h] = _mm256_set1_ps(-INFINITY);
    int64_t t = 0;
    for (; t + 8 * KB <= n; t += 8 * KB) scores_pass<HB, KB>(q, hd, kt, ldk, v, ldv, n, t, sc, bias, ldb, p, mv);
    for (; KB > 2 && t + 16 <= n; t += 16) scores_pass<HB, 2>(q, hd, kt, ldk, v, ldv, n, t, sc, bias, ldb, p, mv);
    // the last 1..15 keys, eight at a time; fewer than eight are copied into a zero-padded block first (reading
    // past the n-th key could leave the cache), and only their lanes are kept
    thread_local std::vector<uint16_t> pad;
    for (; t < n; t += 8) {
        const int64_t rem = std::min<int64_t>(8, n - t);
        const uint16_t* kb = kt + t;
        int64_t ldkb = ldk;
        if (rem < 8) {
            pad.assign((size_t)(hd * 8), 0);
            for (int64_t c = 0; c < hd; ++c)
                for (int64_t j = 0; j < rem; ++j) pad[c * 8 + j] = kt[c * ldk + t + j];
            kb = pad.data();
            ldkb = 8;
        }
        __m256 a[HB];
        for (int h = 0; h < HB; ++h) a[h] = _mm256_setzero_ps();
        for (int64_t c = 0; c < hd; ++c) {
            const __m256 k0 = load_f16(kb + c * ldkb);
            for (int h = 0; h < HB; ++h) a[h] = _mm256_fmadd_ps(_mm256_broadcast_ss(q + h * hd + c), k0, a[h]);
        }
        for (int h = 0; h < HB; ++h) {
            float tmp[8];
            _mm256_storeu_ps(tmp, _mm256_mul_ps(a[h], sc));
            for (int64_t j = 0; j < rem; ++j) p[h * n + t + j] = bias ? tmp[j] + bias[h * ldb + t + j] : tmp[j];
        }
    }
    for (int h = 0; h < HB; ++h) {
        float m = hmax(mv[h]);
        for (int64_t j = n - n % 16; j < n; ++j) m = p[h * n + j] > m ? p[h * n + j] : m;
        mx[h] = m;
    }
}

// the maximum of a row's first len scores (exact in any order; kernels.h: lens)
float row_max(const float* p, int64_t len) {
    __m256 m = _mm256_set1_ps(-INFINITY);
    int64_t t = 0;
    for (; t + 8 <= len; t += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(p + t));
    float r = hmax(m);
    for (; t < len; ++t) r = p[t] > r ? p[t] : r;
    return r;
}

// scores → probabilities in place, given their maximum mx (kernels.h: ek_exp, the 16-lane sum, one reciprocal)
void softmax(float* p, int64_t n, float mx) {
    const int64_t n8 = n - n % 8, n16 = n - n % 16;
    const __m256 m = _mm256_set1_ps(mx);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int64_t t = 0;
    for (; t < n16; t += 16) {
        const __m256 e0 = ek_exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(p + t), m));
        const __m256 e1 = ek_exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(p + t + 8), m));
        _mm256_storeu_ps(p + t, e0);
        _mm256_storeu_ps(p + t + 8, e1);
        s0 = _mm256_add_ps(s0, e0);
        s1 = _mm256_add_ps(s1, e1);
    }
    const __m256 s8 = _mm256_add_ps(s0, s1);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    float tot = _mm_cvtss_f32(s2) + _mm_cvtss_f32(_mm_shuffle_ps(s2, s2, 1));
    for (; t < n; ++t) tot += (p[t] = ek_exp_scalar(p[t] - mx));
    const __m256 inv = _mm256_set1_ps(1.0f / tot);
    for (t = 0; t < n8; t += 8) _mm256_storeu_ps(p + t, _mm256_mul_ps(_mm256_loadu_ps(p + t), inv));
    for (; t < n; ++t) p[t] *= 1.0f / tot;
}

// out[h, c] = sum_t p[h, t] * v[t, c] for HB heads, output dimensions [c, c + 8 * VB) in one pass over the n
// probabilities
template <int HB, int VB>
void values_pass(const float* p, int64_t n, const uint16_t* v, int64_t ldv, int64_t hd, int64_t c, float* out) {
    __m256 a[HB][VB];
    for (int h = 0; h < HB; ++h)
        for (int b = 0; b < VB; ++b) a[h][b] = _mm256_setzero_ps();
    for (int64_t t = 0; t < n; ++t) {
        __m256 vv[VB];
        for (int b = 0; b < VB; ++b) vv[b] = load_f16(v + t * ldv + c + 8 * b);
        for (int h = 0; h < HB; ++h) {
            const __m256 pt = _mm256_broadcast_ss(p + h * n + t);
            for (int b = 0; b < VB; ++b) a[h][b] = _mm256_fmadd_ps(pt, vv[b], a[h][b]);
        }
    }
    for (int h = 0; h < HB; ++h)
        for (int b = 0; b < VB; ++b) _mm256_storeu_ps(out + h * hd + c + 8 * b, a[h][b]);
}

// the scores' register plan: one or two rows take 32 dimensions per pass
template <int HB>
void values(const float* p, int64_t n, const uint16_t* v, int64_t ldv, int64_t hd, float* out) {
    constexpr int VB = keys_regs<HB>();
    int64_t c = 0;
    for (; c + 8 * VB <= hd; c += 8 * VB) values_pass<HB, VB>(p, n, v, ldv, hd, c, out);
    for (; VB > 2 && c + 16 <= hd; c += 16) values_pass<HB, 2>(p, n, v, ldv, hd, c, out);
    ek_attn_values_tail(p, n, v, ldv, hd, c, HB, out);
}

// query heads per block: 6 x 2 accumulators + 2 key / value registers + a broadcast fill 15 of the 16 registers
constexpr int kMaxHeads = 6;

template <int HB>
struct Heads {
    static void run(const float* q, int64_t hd, const uint16_t* kt, int64_t ldk, const uint16_t* v, int64_t ldv,
                    int64_t n, float scale, const float* bias, int64_t ldb, const int32_t* lens, float* p,
                    float* out) {
        float mx[HB];
        scores<HB>(q, hd, kt, ldk, v, ldv, n, scale, bias, ldb, p, mx);
        ek_attn_softmax_rows(p, HB, n, lens, mx, row_max, softmax);
        values<HB>(p, n, v, ldv, hd, out);
    }
};

}  // namespace

extern "C" void ek_attn_f16_f32__avx2(const float* q, int64_t g, int64_t hd, const uint16_t* kt, int64_t ldk,
                                      const uint16_t* v, int64_t ldv, int64_t n, float scale, const float* bias,
                                      int64_t ldb, const int32_t* lens, float* p, float* out, float* first) {
    assert(g >= 1 && hd >= 1 && n >= 1 && ldk >= n && ldv >= hd);
    ek_attn_head_blocks<Heads, kMaxHeads>(q, g, hd, kt, ldk, v, ldv, n, scale, bias, ldb, lens, p, out, first);
}
