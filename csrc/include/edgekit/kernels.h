// Declarations of every kernel implementation edgekit compiles.
//
// Names carry the operation, the formats and the ISA (`ek_<op>__<isa>`); the ISA suffix is also the folder under
// csrc/kernels/ and the implementation string that Python sees (`_C.implementations(op)`). Only the implementations
// for which EDGEKIT_HAVE_<ISA> is defined are linked in; dispatch.cpp picks among them at run time.
#ifndef EDGEKIT_KERNELS_H
#define EDGEKIT_KERNELS_H

#include <stdint.h>

#include "edgekit/formats.h"

#ifdef __cplusplus
extern "C" {
#endif

// Per-row symmetric quantization of activations (see formats.h for the exact rule).
//
//   x       float32 [m, k], row-major, contiguous
//   qmax    1..127 (127 for int8, 7 for int4 activations)
//   q       int8 [m, k] output codes in -qmax..qmax
//   scales  float32 [m] output, amax / qmax per row
//
// Every implementation gives bit-identical codes and scales for the same input.
typedef void (*ek_quant_row_q8_fn)(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales);

void ek_quant_row_q8__scalar(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales);
#if defined(EDGEKIT_HAVE_AVX2)
void ek_quant_row_q8__avx2(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales);
#endif
#if defined(EDGEKIT_HAVE_AVX512)
void ek_quant_row_q8__avx512(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales);
#endif
#if defined(EDGEKIT_HAVE_NEON)
void ek_quant_row_q8__neon(const float* x, int64_t m, int64_t k, int qmax, int8_t* q, float* scales);
#endif

// ---------------------------------------------------------------------------------------------------------------
// W4A8 matmul on the q4x4 layout (formats.h):
//
//   y[i, n] = xs[i] * sum_j  fp32(d[n, j]) * (float)( sum_{c < 32} (q[n, 32j + c] - 8) * xq[i, 32j + c] )
//
// for the rows n of the tiles [t0, t1) (rows >= w->n, the padding, are not written), tokens i < m.
//   xq     int8 [m, k] activation codes (ek_quant_row_q8), xs float32 [m] their per-row scales
//   xbsum  int32 [m, k / 32, 4] lane sums of xq (ek_lane_sums_q8): lane l of block j sums the 8 codes that meet the
//          bytes 4l..4l+3 of a row's 16 qs bytes, i.e. positions 4l..4l+3 and 16+4l..16+4l+3. Kernels that multiply
//          the unsigned codes q take 8 * lane sum off each lane, so every int32 lane holds exactly its eight
//          (q - 8) * x products: a zero-weight block is exactly 0 and float rounding stays relative to the products.
//   y      float32, row i starts at y + i * ldy
// The integer part of every block (the parenthesis) is exact in every implementation; only the order in which the
// float block terms are added differs between ISAs (the Arm ones, neon*, keep the scalar's order and rounding, so
// their output is the scalar's bit for bit). k must be a multiple of 32.
// ---------------------------------------------------------------------------------------------------------------
typedef void (*ek_gemm_q4x4_q8_fn)(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                   int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1);

void ek_gemm_q4x4_q8__scalar(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m,
                             float* y, int64_t ldy, int64_t t0, int64_t t1);
#if defined(EDGEKIT_HAVE_AVX2)
void ek_gemm_q4x4_q8__avx2(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m,
                           float* y, int64_t ldy, int64_t t0, int64_t t1);
#endif
#if defined(EDGEKIT_HAVE_AVX512VNNI)
void ek_gemm_q4x4_q8__avx512vnni(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                 int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1);
#endif
#if defined(EDGEKIT_HAVE_NEON)
void ek_gemm_q4x4_q8__neon(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m,
                           float* y, int64_t ldy, int64_t t0, int64_t t1);
#endif
#if defined(EDGEKIT_HAVE_NEONDOT)
void ek_gemm_q4x4_q8__neondot(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m,
                              float* y, int64_t ldy, int64_t t0, int64_t t1);
#endif
#if defined(EDGEKIT_HAVE_NEONI8MM)
void ek_gemm_q4x4_q8__neoni8mm(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m,
                               float* y, int64_t ldy, int64_t t0, int64_t t1);
#endif

// The same matmul with per-block activation scales (activations quantized per 32 values, as GGUF Q8_0 and ONNX
// Runtime's accuracy level 4 do; codes from ek_quant_row_q8 over [m * k / 32, 32]):
//
//   y[i, n] = sum_j  (fp32(d[n, j]) * xs[i * k / 32 + j]) * (float)(block sum j of ek_gemm_q4x4_q8)
//
//   xs     float32 [m, k / 32]; everything else as for ek_gemm_q4x4_q8 (same integer block sums, bit for bit).
void ek_gemm_q4x4_q8b__scalar(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m,
                              float* y, int64_t ldy, int64_t t0, int64_t t1);
#if defined(EDGEKIT_HAVE_AVX2)
void ek_gemm_q4x4_q8b__avx2(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m,
                            float* y, int64_t ldy, int64_t t0, int64_t t1);
#endif
#if defined(EDGEKIT_HAVE_AVX512VNNI)
void ek_gemm_q4x4_q8b__avx512vnni(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                  int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1);
#endif
#if defined(EDGEKIT_HAVE_NEON)
void ek_gemm_q4x4_q8b__neon(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m,
                            float* y, int64_t ldy, int64_t t0, int64_t t1);
#endif
#if defined(EDGEKIT_HAVE_NEONDOT)
void ek_gemm_q4x4_q8b__neondot(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m,
                               float* y, int64_t ldy, int64_t t0, int64_t t1);
#endif
#if defined(EDGEKIT_HAVE_NEONI8MM)
void ek_gemm_q4x4_q8b__neoni8mm(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m,
                                float* y, int64_t ldy, int64_t t0, int64_t t1);
#endif

// The W4A8 matmul on the q4x16 layout (formats.h), t0..t1 counting groups of 16 rows; otherwise the arguments of
// ek_gemm_q4x4_q8 / _q8b. Its own exact contract, per output (token i, row r), blocks j ascending:
//
//   dot_j = sum_{c < 32} (q[r, 32j + c] - 8) * xq[i, 32j + c]          (exact int32)
//   acc   = fma(float(dot_j), fp32(d[r, j]) * s, acc)  from acc = 0;   s = xs[i * nb + j] (q8b) or 1 (q8)
//   y[i * ldy + r] = acc (q8b)  or  acc * xs[i] (q8)
//
// so every implementation gives the scalar bits. xbsum is ek_lane_sums_q8's; its four lanes sum to a block's sum.
void ek_gemm_q4x16_q8__scalar(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m,
                              float* y, int64_t ldy, int64_t t0, int64_t t1);
void ek_gemm_q4x16_q8b__scalar(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                               int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1);
#if defined(EDGEKIT_HAVE_AVX512VNNI)
void ek_gemm_q4x16_q8__avx512vnni(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                  int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1);
void ek_gemm_q4x16_q8b__avx512vnni(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum,
                                   int64_t m, float* y, int64_t ldy, int64_t t0, int64_t t1);
#endif

// W4A4 with Agile-Quant's packed multiplier (several 4-bit weights per multiplier lane, guard bits, widening once
// per group): the same contract as ek_gemm_q4x4_q8 for activation codes in -7..7 (the int4 tokens of the W4A4
// mix). Compared with the int8 kernels per ISA by `edgekit bench kernels --w4a4`.
void ek_gemm_q4x4_q4__scalar(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m,
                             float* y, int64_t ldy, int64_t t0, int64_t t1);
#if defined(EDGEKIT_HAVE_AVX2)
void ek_gemm_q4x4_q4__avx2(const ek_q4x4* w, const int8_t* xq, const float* xs, const int32_t* xbsum, int64_t m,
                           float* y, int64_t ldy, int64_t t0, int64_t t1);
#endif

// ---------------------------------------------------------------------------------------------------------------
// Float matmul over fp16 rows: the LM head / tied embedding, and attention scores over an fp16 KV cache.
//
//   y[i * ldy + r] = sum_{c < k} fp32(w[r * ldw + c]) * x[i * ldx + c]      rows r in [r0, r1), tokens i < m
//
// Every output is summed in one fixed order, the same in every implementation and for every m and row range: so
// the SIMD kernels equal the scalar one bit for bit, and decode (m = 1) gives the bits prefill gives. The order:
// 16 running sums s_l; for c < k16 (k rounded down to a multiple of 16), ascending, s_{c mod 16} = fma(w, x, s);
// then s_l += s_{l+8} (l < 8), s_l += s_{l+4} (l < 4), s_l += s_{l+2} (l < 2), s_0 += s_1; then the tail
// c = k16 .. k-1 ascending, s_0 = fma(w, x, s_0).
// ---------------------------------------------------------------------------------------------------------------
typedef void (*ek_gemm_f16_f32_fn)(const uint16_t* w, int64_t ldw, const float* x, int64_t ldx, int64_t m,
                                   int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1);

void ek_gemm_f16_f32__scalar(const uint16_t* w, int64_t ldw, const float* x, int64_t ldx, int64_t m, int64_t k,
                             float* y, int64_t ldy, int64_t r0, int64_t r1);
#if defined(EDGEKIT_HAVE_AVX2)
void ek_gemm_f16_f32__avx2(const uint16_t* w, int64_t ldw, const float* x, int64_t ldx, int64_t m, int64_t k,
                           float* y, int64_t ldy, int64_t r0, int64_t r1);
#endif
#if defined(EDGEKIT_HAVE_NEON)
void ek_gemm_f16_f32__neon(const uint16_t* w, int64_t ldw, const float* x, int64_t ldx, int64_t m, int64_t k,
                           float* y, int64_t ldy, int64_t r0, int64_t r1);
#endif

// The same matmul over Q8_0 rows (the 8-bit LM head / tied embedding: int8 codes, one fp16 scale per 32 values):
//
//   w[r, c] = float(q[r * ldq + c]) * fp32(d[r * (ldq / 32) + c / 32])     exact in float32 (8 x 11 bits)
//
// summed in gemm_f16_f32's order with these values, so every implementation gives the scalar bits, and the head
// gives the bits gemm_f16_f32 would give on a float table holding exactly these values. k and ldq are multiples of 32.
typedef void (*ek_gemm_q8_0_f32_fn)(const int8_t* q, const uint16_t* d, int64_t ldq, const float* x, int64_t ldx,
                                    int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1);

void ek_gemm_q8_0_f32__scalar(const int8_t* q, const uint16_t* d, int64_t ldq, const float* x, int64_t ldx,
                              int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1);
#if defined(EDGEKIT_HAVE_AVX2)
void ek_gemm_q8_0_f32__avx2(const int8_t* q, const uint16_t* d, int64_t ldq, const float* x, int64_t ldx,
                            int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1);
#endif
#if defined(EDGEKIT_HAVE_NEON)
void ek_gemm_q8_0_f32__neon(const int8_t* q, const uint16_t* d, int64_t ldq, const float* x, int64_t ldx,
                            int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1);
#endif

// The Q8_0 rows against activations quantized per block of 32 (lm_head_act_bits 8: codes and scales from
// ek_quant_row_q8 over [m * k / 32, 32] with qmax 127, as GGUF Q8_0 and llama.cpp's own Q8_0 head do), integer
// dot products instead of float ones. For row r and token i, block j gives eight exact int32 lane sums
//
//   p[j, l] = sum_{c < 4} q[r * ldq + 32j + 4l + c] * xq[i * k + 32j + 4l + c]        l < 8
//
// (the lanes of one 256-bit vpdpbusd, or of two 128-bit sdot), added in float lane by lane, blocks in order:
//
//   acc[l] = fma((float)p[j, l], fp32(d[r * (ldq / 32) + j]) * xs[i * (k / 32) + j], acc[l])    j = 0, 1, ...
//   y[i * ldy + r] = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]))
//
// (the product of the two scales rounded once; the last line is the 8-4-2 tree of the lanes). Every lane runs its
// own chain, so every implementation gives the scalar bits. k and ldq are multiples of 32; xq holds codes in
// -127..127 (the kernels that multiply |x| by sign-adjusted codes rely on it).
typedef void (*ek_gemm_q8_0_q8b_fn)(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq,
                                    const float* xs, int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0,
                                    int64_t r1);

void ek_gemm_q8_0_q8b__scalar(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq, const float* xs,
                              int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1);
#if defined(EDGEKIT_HAVE_AVX2)
void ek_gemm_q8_0_q8b__avx2(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq, const float* xs,
                            int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1);
#endif
#if defined(EDGEKIT_HAVE_AVX512VNNI)
void ek_gemm_q8_0_q8b__avx512vnni(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq,
                                  const float* xs, int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0,
                                  int64_t r1);
#endif
#if defined(EDGEKIT_HAVE_NEON)
void ek_gemm_q8_0_q8b__neon(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq, const float* xs,
                            int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1);
#endif
#if defined(EDGEKIT_HAVE_NEONDOT)
void ek_gemm_q8_0_q8b__neondot(const int8_t* q, const uint16_t* d, int64_t ldq, const int8_t* xq, const float* xs,
                               int64_t m, int64_t k, float* y, int64_t ldy, int64_t r0, int64_t r1);
#endif

// Float rows [n, k] (k a multiple of 32) to Q8_0, the rule of formats.quantize_q8_0 (and of the GGUF export):
// d = amax / 127 per block of 32 (float32), q = clamp(rint(x * (1 / d)), -127, 127) (0 where d = 0), the stored
// scale fp16(d). A table already on this grid (values q * fp16(d)) comes back with the same codes and scales.
void ek_quantize_q8_0(const float* x, int64_t n, int64_t k, int8_t* q, uint16_t* d);

// Attention of g query heads that share one KV head, over the first n slots of an fp16 cache, fused:
//
//   s[h, t]  = (sum_{c < hd} q[h, c] * fp32(kt[c * ldk + t])) * scale     one fma chain per score, c ascending from 0
//              (+ bias[h * ldb + t] when bias is not null: T5's relative position bias, added after the scale)
//   e[h, t]  = ek_exp(s[h, t] - max_t s[h, t])                             ek_exp: kernels/exp_common.h
//   p[h, t]  = e[h, t] * (1 / sum_t e[h, t])                               the sum in the 16-lane order of gemm_f16_f32
//   out[h,c] = sum_{t < n} p[h, t] * fp32(v[t * ldv + c])                  one fma chain per output, t ascending from 0
//   first[h] = p[h, 0]
//
// q and out are [g, hd] row-major; kt holds the keys transposed (kt[c * ldk + t]: one row of ldk >= n slots per
// dimension, so consecutive keys are consecutive lanes); p is [g, n] scratch the kernel fills with the
// probabilities; bias, when given, holds row h at bias + h * ldb (ldb may be negative: T5's rows of consecutive
// queries are one table read at offsets one apart, ldb = -1, so they need no copy). Every lane runs its own chain,
// so the result does not depend on the vector width: every implementation gives the scalar bits, and a token's
// attention does not depend on what else is in the batch.
//
// lens, when not null, gives each row its own key count 1 <= lens[h] <= n: row h is then exactly the kernel on that
// row alone with n = lens[h] (so several causal positions can share one call), and p[h, t] = 0 for t >= lens[h].
// The SIMD kernels run the value sums of a block of rows over all n keys, adding fma(0, v, .) terms past a row's
// length: they leave a finite sum unchanged, except that an exact -0 may become +0.
typedef void (*ek_attn_f16_f32_fn)(const float* q, int64_t g, int64_t hd, const uint16_t* kt, int64_t ldk,
                                   const uint16_t* v, int64_t ldv, int64_t n, float scale, const float* bias,
                                   int64_t ldb, const int32_t* lens, float* p, float* out, float* first);

void ek_attn_f16_f32__scalar(const float* q, int64_t g, int64_t hd, const uint16_t* kt, int64_t ldk,
                             const uint16_t* v, int64_t ldv, int64_t n, float scale, const float* bias, int64_t ldb,
                             const int32_t* lens, float* p, float* out, float* first);
#if defined(EDGEKIT_HAVE_AVX2)
void ek_attn_f16_f32__avx2(const float* q, int64_t g, int64_t hd, const uint16_t* kt, int64_t ldk,
                           const uint16_t* v, int64_t ldv, int64_t n, float scale, const float* bias, int64_t ldb,
                           const int32_t* lens, float* p, float* out, float* first);
#endif
#if defined(EDGEKIT_HAVE_AVX512)
void ek_attn_f16_f32__avx512(const float* q, int64_t g, int64_t hd, const uint16_t* kt, int64_t ldk,
                             const uint16_t* v, int64_t ldv, int64_t n, float scale, const float* bias, int64_t ldb,
                             const int32_t* lens, float* p, float* out, float* first);
#endif
#if defined(EDGEKIT_HAVE_NEON)
void ek_attn_f16_f32__neon(const float* q, int64_t g, int64_t hd, const uint16_t* kt, int64_t ldk,
                           const uint16_t* v, int64_t ldv, int64_t n, float scale, const float* bias, int64_t ldb,
                           const int32_t* lens, float* p, float* out, float* first);
#endif

// SwiGLU's gate in place: g[i] = g[i] / (1 + ek_exp(-g[i])) * u[i], i < n (the same bits in every implementation).
typedef void (*ek_silu_mul_f32_fn)(float* g, const float* u, int64_t n);

void ek_silu_mul_f32__scalar(float* g, const float* u, int64_t n);
#if defined(EDGEKIT_HAVE_AVX2)
void ek_silu_mul_f32__avx2(float* g, const float* u, int64_t n);
#endif
#if defined(EDGEKIT_HAVE_AVX512)
void ek_silu_mul_f32__avx512(float* g, const float* u, int64_t n);
#endif
#if defined(EDGEKIT_HAVE_NEON)
void ek_silu_mul_f32__neon(float* g, const float* u, int64_t n);
#endif

// T5 v1.1's gated GELU (gelu_pytorch_tanh) in place: g[i] = g[i] / (1 + ek_exp(-z)) * u[i] with
// z = g[i] * (C1 + C2 * (g[i] * g[i])), C1 = 2 sqrt(2 / pi), C2 = C1 * 0.044715 (0.5 (1 + tanh(a)) = 1 / (1 + e^-2a)),
// each product and sum rounded on its own (kernels/gelu_mul_common.h): the same bits in every implementation.
typedef void (*ek_gelu_mul_f32_fn)(float* g, const float* u, int64_t n);

void ek_gelu_mul_f32__scalar(float* g, const float* u, int64_t n);
#if defined(EDGEKIT_HAVE_AVX2)
void ek_gelu_mul_f32__avx2(float* g, const float* u, int64_t n);
#endif
#if defined(EDGEKIT_HAVE_AVX512)
void ek_gelu_mul_f32__avx512(float* g, const float* u, int64_t n);
#endif

// fp32 → fp16 bits, y[i] = ek_fp32_to_fp16(x[i]) for i < n (NaNs stay NaN, their payload may differ).
typedef void (*ek_cvt_f32_f16_fn)(const float* x, uint16_t* y, int64_t n);

void ek_cvt_f32_f16__scalar(const float* x, uint16_t* y, int64_t n);
#if defined(EDGEKIT_HAVE_AVX2)
void ek_cvt_f32_f16__avx2(const float* x, uint16_t* y, int64_t n);
#endif
#if defined(EDGEKIT_HAVE_NEON)
void ek_cvt_f32_f16__neon(const float* x, uint16_t* y, int64_t n);
#endif

// ---------------------------------------------------------------------------------------------------------------
// Helpers shared by every ISA (plain C++, the compiler vectorizes them): not dispatched.
// ---------------------------------------------------------------------------------------------------------------

// xbsum[i, j, l] = lane l sum of block j of row i (see ek_gemm_q4x4_q8); k a multiple of 32.
void ek_lane_sums_q8(const int8_t* xq, int64_t m, int64_t k, int32_t* xbsum);

// Regroup a q4x4 matrix into q4x16 arrays of ceil(n / 16) * (k / 32) * 256 bytes (qs) and ceil(n / 16) * (k / 32)
// * 16 scales (d); rows past n get codes 8 and scale 0.
void ek_pack_q4x16(const ek_q4x4* w, uint8_t* qs, uint16_t* d);

// Repack n rows of GGUF Q4_0 blocks (k / 32 blocks per row, row-major) into q4x4 arrays of
// ceil(n / 4) * (k / 32) * 64 bytes (qs) and ceil(n / 4) * (k / 32) * 4 scales (d).
void ek_pack_q4x4(const ek_block_q4_0* rows, int64_t n, int64_t k, uint8_t* qs, uint16_t* d);

// IEEE half bits → float, exactly (subnormals, inf and NaN included).
float ek_fp16_to_fp32(uint16_t h);

// float → IEEE half bits, rounded to nearest even (overflow → ±inf, NaN stays NaN), as numpy's astype(float16).
uint16_t ek_fp32_to_fp16(float f);

#ifdef __cplusplus
}  // extern "C"
#endif

#endif  // EDGEKIT_KERNELS_H
