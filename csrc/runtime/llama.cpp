// LlamaModel (llama.h): embedding → per layer [RMSNorm → q/k/v (W4A8) → RoPE → GQA attention over the KV cache →
// o (W4A8) → residual → RMSNorm → gate/up (W4A8) → SiLU·up → down (W4A8) → residual] → RMSNorm → LM head.
//
// The math follows transformers' LlamaForCausalLM in float32 (rotate-half RoPE with inv_freq = theta^(-2i/d), eps
// inside the square root, softmax in float32); the linears quantize their inputs per token to int8 exactly as
// edgekit's QLinear / KernelLinear do, so the PyTorch kernel path is the reference for parity.
#include "edgekit/llama.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "edgekit/linear.h"
#include "edgekit/threadpool.h"

namespace edgekit {
namespace {

void check(bool ok, const std::string& what) {
    if (!ok) throw std::invalid_argument("runtime model: " + what);
}

void check_weight(const Q4Weight& w, int64_t n, int64_t k, const std::string& name) {
    const int64_t tiles = (n + EK_Q4X4_ROWS - 1) / EK_Q4X4_ROWS, nb = k / EK_Q4_BLOCK;
    check(w.n == n && w.k == k && k % EK_Q4_BLOCK == 0, name + " must be [" + std::to_string(n) + ", " +
                                                            std::to_string(k) + "], got [" + std::to_string(w.n) +
                                                            ", " + std::to_string(w.k) + "]");
    check((int64_t)w.qs.size() == tiles * nb * EK_Q4X4_TILE_QS_BYTES && (int64_t)w.d.size() == tiles * nb * EK_Q4X4_ROWS,
          name + ": packed arrays do not match its shape");
}

void rms_norm(const float* x, const float* w, int n, int dim, float eps, float* out) {
    for (int i = 0; i < n; ++i) {
        const float* xi = x + (int64_t)i * dim;
        float ss = 0.0f;
        for (int c = 0; c < dim; ++c) ss += xi[c] * xi[c];
        const float inv = 1.0f / std::sqrt(ss / (float)dim + eps);
        for (int c = 0; c < dim; ++c) out[(int64_t)i * dim + c] = w[c] * (xi[c] * inv);
    }
}

void linear(const Q4Weight& w, const float* x, int n, float* y) { linear_q4x4(w.view(), x, n, nullptr, y); }

}  // namespace

LlamaModel::LlamaModel(const LlamaConfig& cfg, const float* embed, const float* final_norm,
                       std::vector<LlamaLayer> layers, const float* head)
    : cfg_(cfg), layers_(std::move(layers)) {
    const int64_t h = cfg_.hidden, q_dim = (int64_t)cfg_.n_heads * cfg_.head_dim;
    const int64_t kv_dim = (int64_t)cfg_.n_kv_heads * cfg_.head_dim;
    check(cfg_.n_layers > 0 && h > 0 && cfg_.vocab > 0 && cfg_.ffn > 0 && cfg_.max_ctx > 0, "sizes must be positive");
    check(cfg_.n_kv_heads > 0 && cfg_.n_heads % cfg_.n_kv_heads == 0, "n_heads must be a multiple of n_kv_heads");
    check(cfg_.head_dim > 0 && cfg_.head_dim % 2 == 0, "head_dim must be even");
    check((int)layers_.size() == cfg_.n_layers, "expected " + std::to_string(cfg_.n_layers) + " layers");
    check(embed != nullptr && final_norm != nullptr, "the embedding and the final norm are required");
    // sizes come from the config: validated above, so the copies read exactly what the caller promised
    embed_.assign(embed, embed + cfg_.vocab * h);
    final_norm_.assign(final_norm, final_norm + h);
    if (head) head_.assign(head, head + cfg_.vocab * h);
    for (int i = 0; i < cfg_.n_layers; ++i) {
        const LlamaLayer& l = layers_[i];
        const std::string p = "layer " + std::to_string(i) + " ";
        check((int64_t)l.attn_norm.size() == h && (int64_t)l.ffn_norm.size() == h, p + "norms must be [hidden]");
        check_weight(l.q, q_dim, h, p + "q_proj");
        check_weight(l.k, kv_dim, h, p + "k_proj");
        check_weight(l.v, kv_dim, h, p + "v_proj");
        check_weight(l.o, h, q_dim, p + "o_proj");
        check_weight(l.gate, cfg_.ffn, h, p + "gate_proj");
        check_weight(l.up, cfg_.ffn, h, p + "up_proj");
        check_weight(l.down, h, cfg_.ffn, p + "down_proj");
    }
    const size_t cache = (size_t)cfg_.n_layers * cfg_.max_ctx * kv_dim;
    k_cache_.assign(cache, 0.0f);
    v_cache_.assign(cache, 0.0f);
    for (int i = 0; i < cfg_.head_dim / 2; ++i)
        inv_freq_.push_back(1.0f / std::pow(cfg_.rope_theta, (float)(2 * i) / (float)cfg_.head_dim));
}

void LlamaModel::truncate(int n) {
    if (n < 0 || n > n_past_) throw std::invalid_argument("truncate: n must lie in 0.." + std::to_string(n_past_));
    n_past_ = n;
}

// q [n, n_heads, head_dim] of the new tokens (roped), keys/values already in the cache; out [n, n_heads * head_dim]
void LlamaModel::attention(int layer, int n, const float* q, float* out) const {
    const int hd = cfg_.head_dim, group = cfg_.n_heads / cfg_.n_kv_heads;
    const int64_t kv_dim = (int64_t)cfg_.n_kv_heads * hd;
    const float* kc = k_cache_.data() + (int64_t)layer * cfg_.max_ctx * kv_dim;
    const float* vc = v_cache_.data() + (int64_t)layer * cfg_.max_ctx * kv_dim;
    const float scale = 1.0f / std::sqrt((float)hd);
    parallel_for((int64_t)n * cfg_.n_heads, 1, [&](int64_t b, int64_t e) {
        std::vector<float> p((size_t)(n_past_ + n));
        for (int64_t task = b; task < e; ++task) {
            const int i = (int)(task / cfg_.n_heads), h = (int)(task % cfg_.n_heads), kvh = h / group;
            const int len = n_past_ + i + 1;  // causal: positions 0 .. n_past + i
            const float* qi = q + ((int64_t)i * cfg_.n_heads + h) * hd;
            float mx = -INFINITY;
            for (int t = 0; t < len; ++t) {
                const float* kt = kc + (int64_t)t * kv_dim + (int64_t)kvh * hd;
                float s = 0.0f;
                for (int c = 0; c < hd; ++c) s += qi[c] * kt[c];
                p[t] = s * scale;
                mx = std::max(mx, p[t]);
            }
            float sum = 0.0f;
            for (int t = 0; t < len; ++t) sum += (p[t] = std::exp(p[t] - mx));
            float* oi = out + ((int64_t)i * cfg_.n_heads + h) * hd;
            std::fill(oi, oi + hd, 0.0f);
            for (int t = 0; t < len; ++t) {
                const float wt = p[t] / sum;
                const float* vt = vc + (int64_t)t * kv_dim + (int64_t)kvh * hd;
                for (int c = 0; c < hd; ++c) oi[c] += wt * vt[c];
            }
        }
    });
}

void LlamaModel::eval(const int32_t* tokens, int n, float* logits, bool all_logits) {
    if (n <= 0) return;
    if (n_past_ + n > cfg_.max_ctx) {
        throw std::invalid_argument("the KV cache holds " + std::to_string(cfg_.max_ctx) + " positions; " +
                                    std::to_string(n_past_) + " used, " + std::to_string(n) + " more requested");
    }
    const int64_t h = cfg_.hidden, hd = cfg_.head_dim, q_dim = (int64_t)cfg_.n_heads * hd;
    const int64_t kv_dim = (int64_t)cfg_.n_kv_heads * hd;
    std::vector<float> x((size_t)(n * h)), xn((size_t)(n * h)), q((size_t)(n * q_dim)), kv((size_t)(n * kv_dim));
    std::vector<float> att((size_t)(n * q_dim)), tmp((size_t)(n * h)), g((size_t)(n * cfg_.ffn)),
        u((size_t)(n * cfg_.ffn));
    for (int i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= cfg_.vocab) {
            throw std::invalid_argument("token id " + std::to_string(tokens[i]) + " outside the vocabulary of " +
                                        std::to_string(cfg_.vocab));
        }
        std::copy_n(embed_.data() + (int64_t)tokens[i] * h, h, x.data() + i * h);
    }
    // rotate-half RoPE on [n, heads, hd] rows at positions n_past + i
    auto rope = [&](float* v, int heads) {
        for (int i = 0; i < n; ++i) {
            const float pos = (float)(n_past_ + i);
            for (int hh = 0; hh < heads; ++hh) {
                float* r = v + ((int64_t)i * heads + hh) * hd;
                for (int c = 0; c < hd / 2; ++c) {
                    const float f = pos * inv_freq_[c], cs = std::cos(f), sn = std::sin(f);
                    const float a = r[c], b = r[c + hd / 2];
                    r[c] = a * cs - b * sn;
                    r[c + hd / 2] = b * cs + a * sn;
                }
            }
        }
    };
    for (int li = 0; li < cfg_.n_layers; ++li) {
        const LlamaLayer& l = layers_[li];
        float* kc = k_cache_.data() + ((int64_t)li * cfg_.max_ctx + n_past_) * kv_dim;
        float* vc = v_cache_.data() + ((int64_t)li * cfg_.max_ctx + n_past_) * kv_dim;
        rms_norm(x.data(), l.attn_norm.data(), n, (int)h, cfg_.rms_eps, xn.data());
        linear(l.q, xn.data(), n, q.data());
        rope(q.data(), cfg_.n_heads);
        linear(l.k, xn.data(), n, kc);  // new keys and values go straight into the cache
        rope(kc, cfg_.n_kv_heads);
        linear(l.v, xn.data(), n, vc);
        attention(li, n, q.data(), att.data());
        linear(l.o, att.data(), n, tmp.data());
        for (int64_t c = 0; c < n * h; ++c) x[c] += tmp[c];
        rms_norm(x.data(), l.ffn_norm.data(), n, (int)h, cfg_.rms_eps, xn.data());
        linear(l.gate, xn.data(), n, g.data());
        linear(l.up, xn.data(), n, u.data());
        for (int64_t c = 0; c < n * cfg_.ffn; ++c) g[c] = g[c] / (1.0f + std::exp(-g[c])) * u[c];  // SiLU(g) * u
        linear(l.down, g.data(), n, tmp.data());
        for (int64_t c = 0; c < n * h; ++c) x[c] += tmp[c];
    }
    n_past_ += n;
    const int first = all_logits ? 0 : n - 1;
    rms_norm(x.data() + first * h, final_norm_.data(), n - first, (int)h, cfg_.rms_eps, xn.data());
    const float* head = head_.empty() ? embed_.data() : head_.data();
    const int rows = n - first;
    // float LM head, the same summation order for one row (decode) and many (prefill), so that both give the same
    // bits: eight partial sums over c < h8 (c mod 8), combined pairwise, then the tail. Several rows run with the
    // activations transposed to [hidden][rows], so the inner loop runs over rows and vectorizes.
    const int64_t h8 = h - h % 8;
    std::vector<float> xt((size_t)(rows * h));
    for (int i = 0; i < rows; ++i)
        for (int64_t c = 0; c < h; ++c) xt[c * rows + i] = xn[(int64_t)i * h + c];
    parallel_for(cfg_.vocab, 256, [&](int64_t b, int64_t e) {
        std::vector<float> acc((size_t)(8 * rows));
        for (int64_t t = b; t < e; ++t) {
            const float* w = head + t * h;
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int64_t c = 0; c < h8; ++c) {
                const float wc = w[c];
                const float* xc = xt.data() + c * rows;
                float* a = acc.data() + (c & 7) * rows;
                for (int i = 0; i < rows; ++i) a[i] += wc * xc[i];
            }
            for (int i = 0; i < rows; ++i) {
                const float* s = acc.data() + i;
                float tot = ((s[0] + s[rows]) + (s[2 * rows] + s[3 * rows])) +
                            ((s[4 * rows] + s[5 * rows]) + (s[6 * rows] + s[7 * rows]));
                for (int64_t c = h8; c < h; ++c) tot += w[c] * xt[c * rows + i];
                logits[(int64_t)i * cfg_.vocab + t] = tot;
            }
        }
    });
}

}  // namespace edgekit
