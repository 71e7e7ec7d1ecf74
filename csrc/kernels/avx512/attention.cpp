// AVX-512 fused attention kernel, bit-identical to the scalar reference (kernels.h).
//
// The AVX2 file's plan on 16-lane registers: scores take 32 keys (two registers) of up to twelve query rows per pass
// over the head dimension (24 accumulators of the 32 registers: 24 fma per 2 converted loads), adding the bias and
// keeping each row's maximum in the same pass; values 32 output dimensions of up to twelve rows per pass over the
// probabilities; up to three rows (decode) take 64 keys and 64 dimensions per pass instead; one register holds the
// 16 running sums of the softmax denominator, so the contract's tree is the
// register's halves.
#include <assert.h>
#include <immintrin.h>
#include <math.h>

#include <algorithm>
#include <vector>

#include "../attention_common.h"
#include "edgekit/kernels.h"
#include "exp_avx512.h"

namespace {

inline __m512 load_f16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Keys per pass: 16 * KB. A pass is a chain of hd fma per accumulator, so few rows (decode: one query row's two or
// three heads) need more keys per pass to keep enough chains in flight, and then also read 128 contiguous bytes
// of each of the hd key rows (which lie ldk apart) per visit instead of 64.
template <int HB>
constexpr int keys_regs() { return HB <= 3 ? 4 : 2; }

template <int HB, int KB>
void scores_pass(const float* q, int64_t hd, const uint16_t* kt, int64_t ldk, const uint16_t* v, int64_t ldv,
                 int64_t n, int64_t t, __m512 sc, const float* bias, int64_t ldb, float* p, __m512* mv) {
    __m512 a[HB][KB];
    for (int h = 0; h < HB; ++h)
        for (int b = 0; b < KB; ++b) a[h][b] = _mm512_setzero_ps();
    for (int64_t c = 0; c < hd; ++c) {
        if (KB == 4) {
            // few rows (decode): the keys come from DRAM as hd rows ldk apart, more streams than the hardware
            // prefetchers follow. Ask, into L2, for this row's next pass and, one slot per dimension, for the values
            // of this pass's keys (read after the softmax): decode attention 1.4-1.6x faster on a Zen 4 (BENCHMARKS
            // section 4). Prefetches past the cache's end do not fault.
            const char* ahead = reinterpret_cast<const char*>(kt + c * ldk + t + 16 * KB);
            _mm_prefetch(ahead, _MM_HINT_T1);
            _mm_prefetch(ahead + 64, _MM_HINT_T1);
            if (c < 16 * KB) {
                const char* vr = reinterpret_cast<const char*>(v + (t + c) * ldv);
                for (int64_t o = 0; o < 2 * hd; o += 64) _mm_prefetch(vr + o, _MM_HINT_T1);
            }
        }
        __m512 k[KB];
        for (int b = 0; b < KB; ++b) k[b] = load_f16(kt + c * ldk + t + 16 * b);
        for (int h = 0; h < HB; ++h) {
            const __m512 qc = _mm512_set1_ps(q[h * hd + c]);
            for (int b = 0; b < KB; ++b) a[h][b] = _mm512_fmadd_ps(qc, k[b], a[h][b]);
        }
    }
    for (int h = 0; h < HB; ++h) {
        for (int b = 0; b < KB; ++b) {
            __m512 s0 = _mm512_mul_ps(a[h][b], sc);
            if (bias) s0 = _mm512_add_ps(s0, _mm512_loadu_ps(bias + h * ldb + t + 16 * b));
            mv[h] = _mm512_max_ps(mv[h], s0);
            _mm512_storeu_ps(p + h * n + t + 16 * b, s0);
        }
    }
}

// scores of HB rows for keys [0, n): p[h * n + t] = (sum_c q[h, c] * k[c, t]) * scale (+ bias[h * n + t]), and
// each row's maximum mx[h] (exact, so in any order)
template <int HB>
void scores(const float* q, int64_t hd, const uint16_t* kt, int64_t ldk, const uint16_t* v, int64_t ldv, int64_t n,
            float scale, const float* bias, int64_t ldb, float* p, float* mx) {
    constexpr int KB = keys_regs<HB>();
    const __m512 sc = _mm512_set1_ps(scale);
    __m512 mv[HB];
    for (int h = 0; h < HB; ++h) mv[h] = _mm512_set1_ps(-INFINITY);
    int64_t t = 0;
    for (; t + 16 * KB <= n; t += 16 * KB) scores_pass<HB, KB>(q, hd, kt, ldk, v, ldv, n, t, sc, bias, ldb, p, mv);
    for (; KB > 2 && t + 32 <= n; t += 32) scores_pass<HB, 2>(q, hd, kt, ldk, v, ldv, n, t, sc, bias, ldb, p, mv);
    // the last 1..31 keys, 16 at a time; fewer than 16 through a zero-padded block (reading past the n-th key could
    // leave the cache), keeping only their lanes
    thread_local std::vector<uint16_t> pad;
    for (; t < n; t += 16) {
        const int64_t rem = std::min<int64_t>(16, n - t);
        const uint16_t* kb = kt + t;
        int64_t ldkb = ldk;
        if (rem < 16) {
            pad.assign((size_t)(hd * 16), 0);
            for (int64_t c = 0; c < hd; ++c)
                for (int64_t j = 0; j < rem; ++j) pad[c * 16 + j] = kt[c * ldk + t + j];
            kb = pad.data();
            ldkb = 16;
        }
        __m512 a[HB];
        for (int h = 0; h < HB; ++h) a[h] = _mm512_setzero_ps();
        for (int64_t c = 0; c < hd; ++c) {
            const __m512 k0 = load_f16(kb + c * ldkb);
            for (int h = 0; h < HB; ++h) a[h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * hd + c]), k0, a[h]);
        }
        const __mmask16 keep = (__mmask16)((1u << rem) - 1);
        for (int h = 0; h < HB; ++h) {
            __m512 s0 = _mm512_mul_ps(a[h], sc);
            if (bias) s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(keep, bias + h * ldb + t));
            mv[h] = _mm512_mask_max_ps(mv[h], keep, mv[h], s0);
            _mm512_mask_storeu_ps(p + h * n + t, keep, s0);
        }
    }
    for (int h = 0; h < HB; ++h) mx[h] = _mm512_reduce_max_ps(mv[h]);
}

// the maximum of a row's first len scores (exact in any order; kernels.h: lens)
float row_max(const float* p, int64_t len) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    int64_t t = 0;
    for (; t + 16 <= len; t += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(p + t));
    if (t < len) {
        const __mmask16 keep = (__mmask16)((1u << (len - t)) - 1);
        m = _mm512_mask_max_ps(m, keep, m, _mm512_maskz_loadu_ps(keep, p + t));
    }
    return _mm512_reduce_max_ps(m);
}

// scores → probabilities in place, given their maximum mx (kernels.h: ek_exp, the 16-lane sum, one reciprocal)
void softmax(float* p, int64_t n, float mx) {
    const int64_t n16 = n - n % 16;
    const __m512 m = _mm512_set1_ps(mx);
    __m512 s = _mm512_setzero_ps();
    int64_t t = 0;
    for (; t < n16; t += 16) {
        const __m512 e = ek_exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(p + t), m));
        _mm512_storeu_ps(p + t, e);
        s = _mm512_add_ps(s, e);
    }
    // the contract's tree: s_l + s_{l+8}, then + s_{l+4}, + s_{l+2}, s_0 + s_1
    const __m256 hi8 = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(s), 1));  // AVX-512F only
    const __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(s), hi8);
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
    float tot = _mm_cvtss_f32(s2) + _mm_cvtss_f32(_mm_shuffle_ps(s2, s2, 1));
    for (; t < n; ++t) tot += (p[t] = ek_exp_scalar(p[t] - mx));
    const float inv = 1.0f / tot;
    const __m512 iv = _mm512_set1_ps(inv);
    for (t = 0; t < n16; t += 16) _mm512_storeu_ps(p + t, _mm512_mul_ps(_mm512_loadu_ps(p + t), iv));
    for (; t < n; ++t) p[t] *= inv;
}

// Output dimensions [c, c + 16 * VB) of HB rows in one pass over the n probabilities.
template <int HB, int VB>
void values_pass(const float* p, int64_t n, const uint16_t* v, int64_t ldv, int64_t hd, int64_t c, float* out) {
    __m512 a[HB][VB];
    for (int h = 0; h < HB; ++h)
        for (int b = 0; b < VB; ++b) a[h][b] = _mm512_setzero_ps();
    for (int64_t t = 0; t < n; ++t) {
        __m512 vv[VB];
        for (int b = 0; b < VB; ++b) vv[b] = load_f16(v + t * ldv + c + 16 * b);
        for (int h = 0; h < HB; ++h) {
            const __m512 pt = _mm512_set1_ps(p[h * n + t]);
            for (int b = 0; b < VB; ++b) a[h][b] = _mm512_fmadd_ps(pt, vv[b], a[h][b]);
        }
    }
    for (int h = 0; h < HB; ++h)
        for (int b = 0; b < VB; ++b) _mm512_storeu_ps(out + h * hd + c + 16 * b, a[h][b]);
}

// the same register plan as the scores: few rows take 64 dimensions per pass (a head of 64 in one pass over the
// values, reading each value row's 128 contiguous bytes once)
template <int HB>
void values(const float* p, int64_t n, const uint16_t* v, int64_t ldv, int64_t hd, float* out) {
    constexpr int VB = keys_regs<HB>();
    int64_t c = 0;
    for (; c + 16 * VB <= hd; c += 16 * VB) values_pass<HB, VB>(p, n, v, ldv, hd, c, out);
    for (; VB > 2 && c + 32 <= hd; c += 32) values_pass<HB, 2>(p, n, v, ldv, hd, c, out);
    ek_attn_values_tail(p, n, v, ldv, hd, c, HB, out);
}

// query rows per block: 12 x 2 accumulators + 2 key / value registers + broadcasts fit the 32 registers
constexpr int kMaxHeads = 12;

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

extern "C" void ek_attn_f16_f32__avx512(const float* q, int64_t g, int64_t hd, const uint16_t* kt, int64_t ldk,
                                        const uint16_t* v, int64_t ldv, int64_t n, float scale, const float* bias,
                                        int64_t ldb, const int32_t* lens, float* p, float* out, float* first) {
    assert(g >= 1 && hd >= 1 && n >= 1 && ldk >= n && ldv >= hd);
    ek_attn_head_blocks<Heads, kMaxHeads>(q, g, hd, kt, ldk, v, ldv, n, scale, bias, ldb, lens, p, out, first);
}
