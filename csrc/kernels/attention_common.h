// Pieces of the fused attention kernels that every ISA shares (kernels.h gives the contract): the scalar tails,
// which are the reference's own loops, and the walk over the query heads in blocks (up to four, or what the ISA's
// registers hold).
// Internal to csrc/kernels; not installed.
#ifndef EDGEKIT_KERNELS_ATTENTION_COMMON_H
#define EDGEKIT_KERNELS_ATTENTION_COMMON_H

#include <stdint.h>

#include "edgekit/kernels.h"
#include "exp_common.h"

// One score: the fma chain over the head dimension, then the scale (the tail of the SIMD score loops).
static inline float ek_attn_score(const float* q, int64_t hd, const uint16_t* kt, int64_t ldk, int64_t t,
                                  float scale) {
    float s = 0.0f;
    for (int64_t c = 0; c < hd; ++c) s = fmaf(q[c], ek_fp16_to_fp32(kt[c * ldk + t]), s);
    return s * scale;
}

// out[h, c] for c in [c0, hd) and hb heads: the fma chain over t (the tail of the SIMD value sums).
static inline void ek_attn_values_tail(const float* p, int64_t n, const uint16_t* v, int64_t ldv, int64_t hd,
                                       int64_t c0, int hb, float* out) {
    for (int64_t c = c0; c < hd; ++c) {
        for (int h = 0; h < hb; ++h) {
            float a = 0.0f;
            for (int64_t t = 0; t < n; ++t) a = fmaf(p[h * n + t], ek_fp16_to_fp32(v[t * ldv + c]), a);
            out[h * hd + c] = a;
        }
    }
}

// p[h, t] += bias[h * ldb + t] for hb heads of n scores (p's rows ldp apart; kernels.h: the position bias after
// the scale); nothing when bias is null.
static inline void ek_attn_add_bias(float* p, int64_t ldp, const float* bias, int64_t ldb, int hb, int64_t n) {
    if (!bias) return;
    for (int h = 0; h < hb; ++h)
        for (int64_t t = 0; t < n; ++t) p[h * ldp + t] += bias[h * ldb + t];
}

// A row with fewer keys than the block's n (kernels.h: lens), once its softmax is done: zeros over [len, n), so the
// block's value sums over all n keys add nothing for it there.
static inline void ek_attn_zero_after(float* p, int64_t len, int64_t n) {
    for (int64_t t = len; t < n; ++t) p[t] = 0.0f;
}

#ifdef __cplusplus
// Scores → probabilities for hb rows of a block whose scores fill p (rows n apart) and whose row maxima over all n
// keys are mx: a row of its own length (lens) takes the maximum of its first len scores (row_max(p, len)), then
// softmax(p, len, max) and zeros past len. The SIMD kernels' shared step between their score and value passes.
template <class RowMax, class Softmax>
inline void ek_attn_softmax_rows(float* p, int hb, int64_t n, const int32_t* lens, float* mx, RowMax row_max,
                                 Softmax softmax) {
    for (int h = 0; h < hb; ++h) {
        const int64_t len = lens ? lens[h] : n;
        if (len < n) mx[h] = row_max(p + h * n, len);
        softmax(p + h * n, len, mx[h]);
        ek_attn_zero_after(p + h * n, len, n);
    }
}

// Block<HB>::run for the largest HB <= MaxHB that is <= hb (hb >= 1): one compiled block size per count of heads.
template <template <int> class Block, int HB>
inline void ek_attn_run_block(int64_t hb, const float* q, int64_t hd, const uint16_t* kt, int64_t ldk,
                              const uint16_t* v, int64_t ldv, int64_t n, float scale, const float* bias,
                              int64_t ldb, const int32_t* lens, float* p, float* out) {
    if constexpr (HB > 1) {
        if (hb < HB) {
            ek_attn_run_block<Block, HB - 1>(hb, q, hd, kt, ldk, v, ldv, n, scale, bias, ldb, lens, p, out);
            return;
        }
    }
    Block<HB>::run(q, hd, kt, ldk, v, ldv, n, scale, bias, ldb, lens, p, out);
}

// The fused kernel's outer loop: query heads in blocks of up to MaxHB, each block run by Block<HB>::run(q, hd, kt,
// ldk, v, ldv, n, scale, bias, ldb, lens, p, out) (scores, bias, softmax, values of HB heads), then first[h] = p[h, 0].
// MaxHB is what the ISA's registers hold (kernels.h: a head's bits do not depend on its block).
template <template <int> class Block, int MaxHB = 4>
void ek_attn_head_blocks(const float* q, int64_t g, int64_t hd, const uint16_t* kt, int64_t ldk, const uint16_t* v,
                         int64_t ldv, int64_t n, float scale, const float* bias, int64_t ldb, const int32_t* lens,
                         float* p, float* out, float* first) {
    for (int64_t h = 0; h < g; h += MaxHB) {
        const int64_t hb = g - h < MaxHB ? g - h : MaxHB;
        ek_attn_run_block<Block, MaxHB>(hb, q + h * hd, hd, kt, ldk, v, ldv, n, scale, bias ? bias + h * ldb : nullptr,
                                        ldb, lens ? lens + h : nullptr, p + h * n, out + h * hd);
    }
    for (int64_t h = 0; h < g; ++h) first[h] = p[h * n];
}
#endif

#endif  // EDGEKIT_KERNELS_ATTENTION_COMMON_H
