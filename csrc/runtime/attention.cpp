// store_kv_fp16 and attention_causal (attention.h): the fp16 cache writes and the fused per-(token, KV head) kernel
// over the pool; attention_causal_f32 runs both on a cache of its own.
#include "edgekit/attention.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "edgekit/dispatch.h"
#include "edgekit/kernels.h"
#include "edgekit/threadpool.h"

namespace edgekit {

void store_kv_fp16(const float* k, const float* v, int n, int64_t kv_dim, int base, uint16_t* kt, int64_t ldk,
                   uint16_t* vc) {
    static const ek_cvt_f32_f16_fn cvt = kernel<Op::cvt_f32_f16>();
    // Keys go through a block of kBlock converted rows, then out a column at a time: each transposed row gets
    // kBlock contiguous slots per visit instead of one (one slot per visit touched kv_dim cache lines per token:
    // 4 % of a T5 encoder's prefill at 576 dims)
    constexpr int64_t kBlock = 16;
    parallel_for(n, kBlock, [&](int64_t b, int64_t e) {
        thread_local std::vector<uint16_t> k16;
        k16.resize((size_t)(kBlock * kv_dim));
        for (int64_t i0 = b; i0 < e; i0 += kBlock) {
            const int64_t rows = std::min(kBlock, e - i0);
            for (int64_t j = 0; j < rows; ++j) {
                cvt(v + (i0 + j) * kv_dim, vc + (base + i0 + j) * kv_dim, kv_dim);
                cvt(k + (i0 + j) * kv_dim, k16.data() + j * kv_dim, kv_dim);
            }
            for (int64_t c = 0; c < kv_dim; ++c) {
                uint16_t* dst = kt + c * ldk + base + i0;
                for (int64_t j = 0; j < rows; ++j) dst[j] = k16[(size_t)(j * kv_dim + c)];
            }
        }
    });
}

// Parts each KV head's group of query heads is split into: 1, except when the rows are too few to give every thread
// equal work (decode: one row of SmolLM2's 3 KV heads on 2 threads ran 2:1). Then each group runs as two tasks, so
// the pool's contiguous ranges can even out (3 KV heads x {2 heads, 1 head} on 2 threads: 5:4 heads). The kernel's
// heads are independent (kernels.h), so a head gives the same bits in whichever part it runs.
namespace {

int group_parts(int n, int n_kv, int group) {
    const int threads = get_num_threads();
    if (threads <= 1 || group < 2 || (int64_t)n * n_kv >= 8 * (int64_t)threads) return 1;
    return ((int64_t)n * n_kv) % threads == 0 ? 1 : 2;
}

// Prefill: kPositions consecutive tokens of one KV head share a kernel call, each row with its own causal length
// (kernels.h: lens), so every key and value the kernel converts from fp16 serves kPositions x group query rows
// instead of group (SmolLM2: 12 rows, the AVX-512 kernel's block, instead of 3). A row's bits are those of its own
// call, so prefill still gives decode's bits.
constexpr int kPositions = 4;

void attention_prefill(const KvView& kv, const float* q, int n, int base, float* out, float* first) {
    const int hd = kv.head_dim, n_kv = kv.n_kv_heads, n_heads = kv.n_heads, group = n_heads / n_kv;
    const int64_t kv_dim = (int64_t)n_kv * hd, max_len = (int64_t)base + n, rows = (int64_t)kPositions * group;
    const float scale = 1.0f / std::sqrt((float)hd);
    static const ek_attn_f16_f32_fn attn = kernel<Op::attn_f16_f32>();
    const int64_t blocks = (n + kPositions - 1) / kPositions;
    // blocks grow with their tokens: the tasks go short, long, short, long (as in attention_causal)
    parallel_for(blocks * n_kv, 1, [&](int64_t b, int64_t e) {
        thread_local std::vector<float> p, qb, ob, fb;
        thread_local std::vector<int32_t> lens;
        if ((int64_t)p.size() < rows * max_len) p.resize((size_t)(rows * max_len));
        qb.resize((size_t)(rows * hd));
        ob.resize((size_t)(rows * hd));
        fb.resize((size_t)rows);
        lens.resize((size_t)rows);
        for (int64_t task = b; task < e; ++task) {
            const int64_t r = task / n_kv, kvh = task % n_kv;
            const int64_t blk = r % 2 == 0 ? r / 2 : blocks - 1 - r / 2;
            const int i0 = (int)(blk * kPositions), np = std::min(kPositions, n - i0);
            const int64_t g = (int64_t)np * group;
            for (int j = 0; j < np; ++j) {
                const float* src = q + ((int64_t)(i0 + j) * n_heads + kvh * group) * hd;
                std::copy(src, src + group * hd, qb.data() + (int64_t)j * group * hd);
                for (int h = 0; h < group; ++h) lens[(size_t)(j * group + h)] = base + i0 + j + 1;
            }
            attn(qb.data(), g, hd, kv.kt + kvh * hd * kv.ldk, kv.ldk, kv.v + kvh * hd, kv_dim, base + i0 + np, scale,
                 nullptr, 0, lens.data(), p.data(), ob.data(), fb.data());
            for (int j = 0; j < np; ++j) {
                const int64_t head0 = (int64_t)(i0 + j) * n_heads + kvh * group;
                std::copy(ob.data() + (int64_t)j * group * hd, ob.data() + (int64_t)(j + 1) * group * hd,
                          out + head0 * hd);
                std::copy(fb.data() + j * group, fb.data() + (j + 1) * group, first + head0);
            }
        }
    });
}

}  // namespace

void attention_causal(const KvView& kv, const float* q, int n, int base, float* out, float* first) {
    const int hd = kv.head_dim, n_kv = kv.n_kv_heads, n_heads = kv.n_heads, group = n_heads / n_kv;
    const int64_t kv_dim = (int64_t)n_kv * hd, max_len = (int64_t)base + n;
    const float scale = 1.0f / std::sqrt((float)hd);
    static const ek_attn_f16_f32_fn attn = kernel<Op::attn_f16_f32>();
    const int parts = group_parts(n, n_kv, group), first_part = (group + parts - 1) / parts;
    if (parts == 1 && n >= 2 * kPositions) {  // enough rows: batch positions (decode and short chunks stay per token)
        attention_prefill(kv, q, n, base, out, first);
        return;
    }
    // causal rows grow with the token: the tasks go short, long, short, long (tokens 0, n-1, 1, n-2, ...) so that
    // the pool's equal contiguous ranges hold equal work
    parallel_for((int64_t)n * n_kv * parts, 1, [&](int64_t b, int64_t e) {
        thread_local std::vector<float> p;  // probabilities of the task's heads
        if ((int64_t)p.size() < group * max_len) p.resize((size_t)(group * max_len));
        for (int64_t task = b; task < e; ++task) {
            const int64_t r = task / ((int64_t)n_kv * parts), rest = task % ((int64_t)n_kv * parts);
            const int i = (int)(r % 2 == 0 ? r / 2 : n - 1 - r / 2), kvh = (int)(rest / parts);
            const int part = (int)(rest % parts), h0 = part * first_part;
            const int g = std::min(group, h0 + first_part) - h0;  // heads of this part
            const int64_t head0 = (int64_t)i * n_heads + (int64_t)kvh * group + h0;  // the part's first query head
            attn(q + head0 * hd, g, hd, kv.kt + (int64_t)kvh * hd * kv.ldk, kv.ldk, kv.v + (int64_t)kvh * hd,
                 kv_dim, base + i + 1, scale, nullptr, 0, nullptr, p.data(), out + head0 * hd, first + head0);
        }
    });
}

void attention_causal_f32(const float* q, const float* k, const float* v, int n, int len, int n_heads,
                          int n_kv_heads, int head_dim, float* out) {
    const int64_t kv_dim = (int64_t)n_kv_heads * head_dim, ldk = len;
    std::vector<uint16_t> kt((size_t)(kv_dim * ldk)), vc((size_t)(len * kv_dim));
    std::vector<float> first((size_t)n * n_heads);
    store_kv_fp16(k, v, len, kv_dim, 0, kt.data(), ldk, vc.data());  // the runtime's cache writes
    const KvView kv{kt.data(), ldk, vc.data(), n_heads, n_kv_heads, head_dim};
    attention_causal(kv, q, n, len - n, out, first.data());
}

}  // namespace edgekit
