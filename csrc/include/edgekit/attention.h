// Causal grouped-query attention over an fp16 KV cache, split over the thread pool: the runtime's attention step,
// shared with the Python binding so that the PyTorch kernel path can run the very same computation.
#ifndef EDGEKIT_ATTENTION_H
#define EDGEKIT_ATTENTION_H

#include <cstdint>

namespace edgekit {

// The cache a layer's attention reads: keys transposed (row (kv head, dim) of ldk slots; kt + (h * head_dim + c) *
// ldk), values [slot][kv head][head_dim] (row stride kv_heads * head_dim).
struct KvView {
    const uint16_t* kt;
    int64_t ldk;
    const uint16_t* v;
    int n_heads, n_kv_heads, head_dim;
};

// The row stride of a transposed key cache of `slots` slots: one cache line (32 fp16) longer, so that the head_dim
// key rows a score pass reads do not all fall in the same few L1 sets (rows of 2 or 4 KiB would; padding the Llama
// cache this way gave prefill +10 %, BENCHMARKS §4).
inline int64_t kt_row_stride(int64_t slots) { return slots + 32; }

// n rows of keys and values (fp32 [n, kv_dim]) into the fp16 cache at slots base .. base + n - 1: keys transposed
// (row c of ldk slots per (kv head, dim) c), values [slot][kv_dim] from vc (slot 0). Rows split over the pool.
void store_kv_fp16(const float* k, const float* v, int n, int64_t kv_dim, int base, uint16_t* kt, int64_t ldk,
                   uint16_t* vc);

// q [n, n_heads, head_dim] of n new tokens at cache slots base .. base + n - 1 (each attends to slots 0 .. its
// own); out [n, n_heads * head_dim]; first [n, n_heads] receives each probability on slot 0. One task per (token,
// KV head) on ek_attn_f16_f32 with scale 1 / sqrt(head_dim): a token's result does not depend on the batch or the
// thread count, so decode and prefill give the same bits.
void attention_causal(const KvView& kv, const float* q, int n, int base, float* out, float* first);

// The same step from fp32 keys and values [len, n_kv_heads, head_dim] of len positions: they are written to an fp16
// cache of their own (store_kv_fp16), then q [n, n_heads, head_dim], the last n positions, attends over it → out
// [n, n_heads * head_dim]. What the PyTorch kernel path calls (edgekit._C.attention_causal): the runtime's bits.
void attention_causal_f32(const float* q, const float* k, const float* v, int n, int len, int n_heads,
                          int n_kv_heads, int head_dim, float* out);

}  // namespace edgekit

#endif  // EDGEKIT_ATTENTION_H
