// LlamaModel (llama.h): embedding → per layer [RMSNorm → q/k/v (W4A8) → RoPE → GQA attention over the KV cache →
// o (W4A8) → residual → RMSNorm → gate/up (W4A8) → SiLU·up → down (W4A8) → residual] → RMSNorm → LM head.
//
// The math follows transformers' LlamaForCausalLM (rotate-half RoPE with inv_freq = theta^(-2i/d), eps inside the
// square root, softmax in float32) with fp16 embedding, head and KV cache; the linears quantize their inputs to
// int8 per token, per block of 32 or on a static per-tensor grid, exactly as edgekit's KernelLinear does. Every
// float step is one the PyTorch kernel path reproduces bit for bit (edgekit/quant/runtime_numerics.py: the same
// kernels, and RMSNorm / RoPE values rounded once from double), so that path is an exact reference for parity.
#include "edgekit/llama.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "edgekit/attention.h"
#include "edgekit/dispatch.h"
#include "edgekit/kernels.h"
#include "edgekit/linear.h"
#include "edgekit/threadpool.h"

namespace edgekit {
namespace {

// The first `rows` output rows of w (an ACM's gate / up for its first learners; rows a multiple of the tile rows).
ek_q4x4 prefix_rows(const Q4Weight& w, int64_t rows) {
    ek_q4x4 v = w.view();
    v.n = rows;
    return v;
}

// The first `cols` input columns of w (an ACM's down for its first learners; cols a multiple of 32).
ek_q4x4 prefix_cols(const Q4Weight& w, int64_t cols) {
    ek_q4x4 v = w.view();
    v.k = cols;
    v.ldb = w.k / EK_Q4_BLOCK;
    return v;
}

void check_gate(const AcmGate& g, int64_t h, int64_t ffn, const std::string& p) {
    check(g.n > 0 && g.width > 0 && (int64_t)g.n * g.width == ffn,
          p + "ACM learners x width must equal the FFN width " + std::to_string(ffn));
    check(g.width % EK_Q4_BLOCK == 0, p + "ACM learner width must be a multiple of 32");
    check(g.hidden > 0 && g.dim == h, p + "ACM gate must read [hidden] inputs");
    check((int64_t)g.w1.size() == (int64_t)g.hidden * h && (int64_t)g.b1.size() == g.hidden &&
              (int64_t)g.w2.size() == (int64_t)(g.n + 1) * g.hidden && (int64_t)g.b2.size() == g.n + 1,
          p + "ACM gate weights must be [gate_hidden, hidden], [gate_hidden], [N + 1, gate_hidden], [N + 1]");
}

int64_t table_size(const LlamaConfig& c) { return c.vocab > 0 && c.hidden > 0 ? (int64_t)c.vocab * c.hidden : 0; }

}  // namespace

LlamaModel::LlamaModel(const LlamaConfig& cfg, std::vector<uint16_t> embed16, const float* final_norm,
                       std::vector<LlamaLayer> layers, std::vector<uint16_t> head16, Q8Table q8, Q8Table head_q8)
    : cfg_(cfg), embed_(std::move(embed16)), head_(std::move(head16)), q8_(std::move(q8)),
      head_q8_(std::move(head_q8)), layers_(std::move(layers)) {
    const int64_t h = cfg_.hidden, q_dim = (int64_t)cfg_.n_heads * cfg_.head_dim;
    const int64_t kv_dim = (int64_t)cfg_.n_kv_heads * cfg_.head_dim;
    check(cfg_.n_layers > 0 && h > 0 && cfg_.vocab > 0 && cfg_.ffn > 0 && cfg_.max_ctx > 0, "sizes must be positive");
    check(cfg_.n_kv_heads > 0 && cfg_.n_heads % cfg_.n_kv_heads == 0, "n_heads must be a multiple of n_kv_heads");
    check(cfg_.head_dim > 0 && cfg_.head_dim % 2 == 0 && cfg_.head_dim <= 1024, "head_dim must be even, <= 1024");
    check((int)layers_.size() == cfg_.n_layers, "expected " + std::to_string(cfg_.n_layers) + " layers");
    check(final_norm != nullptr, "the final norm is required");
    if (!q8_.q.empty()) {
        check(embed_.empty() && head_.empty(), "a Q8_0 table is the embedding and the head: no fp16 table beside it");
        check(h % 32 == 0, "a Q8_0 table needs a hidden size that is a multiple of 32");
        check((int64_t)q8_.q.size() == table_size(cfg_) && (int64_t)q8_.d.size() == table_size(cfg_) / 32,
              "the Q8_0 table must be [vocab, hidden] codes and [vocab, hidden / 32] scales");
        check(head_q8_.q.empty() || ((int64_t)head_q8_.q.size() == table_size(cfg_) &&
                                     (int64_t)head_q8_.d.size() == table_size(cfg_) / 32),
              "the untied Q8_0 head must be [vocab, hidden] codes and [vocab, hidden / 32] scales");
    } else {
        check(head_q8_.q.empty(), "an untied Q8_0 head needs the embedding in Q8_0 too");
        check((int64_t)embed_.size() == table_size(cfg_), "the embedding must be [vocab, hidden]");
        check(head_.empty() || (int64_t)head_.size() == table_size(cfg_),
              "the LM head must be [vocab, hidden] or tied");
    }
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
        if (l.acm.enabled()) {
            check_gate(l.acm, h, cfg_.ffn, p);
            check(acm_n_ == 0 || acm_n_ == l.acm.n, p + "every ACM layer must have the same number of learners");
            acm_n_ = l.acm.n;
        }
    }
    acm_counts_.assign(acm_n_ ? (size_t)cfg_.n_layers * (acm_n_ + 1) : 0, 0);
    if (preferred_q4_rows() == EK_Q4X16_ROWS) {
        for (auto& l : layers_)
            for (Q4Weight* w : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) regroup_q4x16(*w);
    }
    final_norm_.assign(final_norm, final_norm + h);
    const size_t cache = (size_t)cfg_.n_layers * cfg_.max_ctx * kv_dim;
    k_cache_.assign((size_t)cfg_.n_layers * kv_dim * kt_stride(), 0);
    v_cache_.assign(cache, 0);
    pos_.assign((size_t)cfg_.n_layers * cfg_.max_ctx, 0);
    len_.assign((size_t)cfg_.n_layers, 0);
    mass_.assign((size_t)cfg_.n_layers, 0.0f);
    const int half = cfg_.head_dim / 2;
    // frequencies, angles and their cos / sin in double, each rounded once to float: correctly rounded values that
    // every libm (and torch in float64) agrees on, so the kernel path's RoPE tables equal these
    std::vector<float> inv_freq(half);
    for (int i = 0; i < half; ++i)
        inv_freq[i] = (float)(1.0 / std::pow((double)cfg_.rope_theta, (double)(2 * i) / (double)cfg_.head_dim));
    rope_cos_.resize((size_t)cfg_.max_ctx * half);
    rope_sin_.resize((size_t)cfg_.max_ctx * half);
    for (int p = 0; p < cfg_.max_ctx; ++p) {
        for (int c = 0; c < half; ++c) {
            const float f = (float)p * inv_freq[c];
            rope_cos_[(size_t)p * half + c] = (float)std::cos((double)f);
            rope_sin_[(size_t)p * half + c] = (float)std::sin((double)f);
        }
    }
}

int64_t LlamaModel::memory_bytes() const {
    int64_t b = (int64_t)(embed_.size() + head_.size() + k_cache_.size() + v_cache_.size()) * 2;
    b += (int64_t)q8_.q.size() + 2 * (int64_t)q8_.d.size();
    b += (int64_t)head_q8_.q.size() + 2 * (int64_t)head_q8_.d.size();
    for (const auto& l : layers_) {
        for (const Q4Weight* w : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down})
            b += (int64_t)w->qs.size() + 2 * (int64_t)w->d.size();
        b += 4 * (int64_t)(l.attn_norm.size() + l.ffn_norm.size());
        b += 4 * (int64_t)(l.acm.w1.size() + l.acm.b1.size() + l.acm.w2.size() + l.acm.b2.size());
    }
    b += 4 * (int64_t)(acm_x_.capacity() + acm_y_.capacity() + acm_k_.capacity() + acm_order_.capacity());
    for (const auto* v : {&x_, &xn_, &q_, &k_, &v_, &att_, &tmp_, &g_, &u_, &first_, &score_, &frozen_})
        b += 4 * (int64_t)v->capacity();
    b += 4 * (int64_t)(pos_.capacity() + idx_.capacity() + pos_act_.capacity() + rope_cos_.size() + rope_sin_.size());
    return b;
}

void LlamaModel::reset() {
    n_past_ = 0;
    std::fill(len_.begin(), len_.end(), 0);
}

void LlamaModel::truncate(int n) {
    if (n < 0 || n > n_past_) throw std::invalid_argument("truncate: n must lie in 0.." + std::to_string(n_past_));
    // after a pruned prefill a layer may hold fewer slots than positions: keep the slots of positions < n
    for (int li = 0; li < cfg_.n_layers; ++li) {
        const int32_t* p = pos_.data() + (int64_t)li * cfg_.max_ctx;
        len_[li] = (int)(std::lower_bound(p, p + len_[li], n) - p);
    }
    n_past_ = n;
}

void LlamaModel::set_pruning(const PruneSchedule& s) {
    s.validate(cfg_.n_layers);
    prune_ = s;
    kept_.clear();
}

void LlamaModel::reserve(int n) {
    if (n <= capacity_) return;
    const size_t h = cfg_.hidden, q_dim = (size_t)cfg_.n_heads * cfg_.head_dim;
    const size_t kv_dim = (size_t)cfg_.n_kv_heads * cfg_.head_dim;
    for (auto* v : {&x_, &xn_, &tmp_}) v->resize(n * h);
    for (auto* v : {&q_, &att_}) v->resize(n * q_dim);
    for (auto* v : {&k_, &v_}) v->resize(n * kv_dim);
    for (auto* v : {&g_, &u_}) v->resize(n * (size_t)cfg_.ffn);
    first_.resize(n * (size_t)cfg_.n_heads);
    score_.resize(n);
    frozen_.resize(n * h);
    idx_.resize(n);
    pos_act_.resize(n);
    if (acm_n_) {
        acm_k_.resize(n);
        acm_order_.resize(n);
        acm_x_.resize(n * h);
        acm_y_.resize(n * h);
    }
    capacity_ = n;
}

// rotate-half RoPE on [n, heads, head_dim] rows at positions pos[i] (< max_ctx: eval checks)
void LlamaModel::rope(float* v, int n, int heads, const int32_t* pos_of) const {
    const int hd = cfg_.head_dim, half = hd / 2;
    parallel_for(n, kRowGrain, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
            const float* cs = rope_cos_.data() + (int64_t)pos_of[i] * half;
            const float* sn = rope_sin_.data() + (int64_t)pos_of[i] * half;
            for (int hh = 0; hh < heads; ++hh) {
                float* r = v + (i * heads + hh) * hd;
                for (int c = 0; c < half; ++c) {
                    const float a = r[c], bb = r[c + half];
                    r[c] = a * cs[c] - bb * sn[c];
                    r[c + half] = bb * cs[c] + a * sn[c];
                }
            }
        }
    });
}

// the n new rows' keys and values (fp32 [n, kv_dim]) into the layer's fp16 caches at slots base .. base + n - 1
void LlamaModel::store_kv(int layer, int base, int n, const float* k, const float* v) {
    const int64_t kv_dim = (int64_t)cfg_.n_kv_heads * cfg_.head_dim, ldk = kt_stride();
    store_kv_fp16(k, v, n, kv_dim, base, k_cache_.data() + (int64_t)layer * kv_dim * ldk, ldk,
                  v_cache_.data() + (int64_t)layer * cfg_.max_ctx * kv_dim);
}

// the layer's attention (attention.h) for n new rows at cache slots base .. base + n - 1
void LlamaModel::attention(int layer, int n, int base, const float* q, float* out, float* first) const {
    const int64_t kv_dim = (int64_t)cfg_.n_kv_heads * cfg_.head_dim, ldk = kt_stride();
    const KvView kv{k_cache_.data() + (int64_t)layer * kv_dim * ldk, ldk,
                    v_cache_.data() + (int64_t)layer * cfg_.max_ctx * kv_dim, cfg_.n_heads, cfg_.n_kv_heads,
                    cfg_.head_dim};
    attention_causal(kv, q, n, base, out, first);
}

// Drops rows at the j-th pruning layer (1-based) of a prefill of n0 prompt tokens: scores the na active rows from
// first_, keeps the survivors in place (x_, idx_, pos_act_ compacted) and, when keep_frozen, saves the dropped rows'
// hidden states for their logits.
void LlamaModel::prune_rows(int j, int n0, int& na, bool keep_frozen) {
    const int nh = cfg_.n_heads;
    const int64_t h = cfg_.hidden;
    for (int i = 0; i < na; ++i) {
        float s = 0.0f;
        for (int hh = 0; hh < nh; ++hh) s += first_[(int64_t)i * nh + hh];  // head order: the PyTorch path's too
        score_[i] = s;
    }
    prune_select(score_.data(), idx_.data(), na, n0, prune_.keep_last, prune_.keep_count(n0, j), keep_rows_);
    float* x = x_.data();
    if (keep_frozen) {
        size_t k = 0;
        for (int i = 0; i < na; ++i) {
            if (k < keep_rows_.size() && keep_rows_[k] == i) { ++k; continue; }
            std::copy(x + i * h, x + (i + 1) * h, frozen_.data() + (int64_t)idx_[i] * h);
        }
    }
    const int nk = (int)keep_rows_.size();
    for (int r = 0; r < nk; ++r) {  // destinations never pass their sources: compaction in place
        const int i = keep_rows_[r];
        if (i != r) std::copy(x + i * h, x + (i + 1) * h, x + r * h);
        idx_[r] = idx_[i];
        pos_act_[r] = pos_act_[i];
    }
    na = nk;
    kept_.emplace_back(idx_.begin(), idx_.begin() + na);
}

void LlamaModel::set_acm(const AcmControl& c) {
    if (c.force_k < -1 || c.force_k > acm_n_)
        throw std::invalid_argument("force_k must be -1 (the gates decide) or in 0.." + std::to_string(acm_n_));
    if (!std::isfinite(c.gate_bias)) throw std::invalid_argument("gate_bias must be finite");
    acm_ctl_ = c;
}

// down(SiLU(gate(x)) * up(x)) for m rows xn at k learners (every neuron for a dense layer), into out [m, hidden]
void LlamaModel::ffn_rows(const LlamaLayer& l, const float* xn, int m, int k, float* out) {
    static const ek_silu_mul_f32_fn silu = kernel<Op::silu_mul_f32>();  // SiLU(g) * u in place
    const int64_t f = l.acm.enabled() ? (int64_t)k * l.acm.width : cfg_.ffn;
    float *g = g_.data(), *u = u_.data();
    linears(xn, m, l.gate, prefix_rows(l.gate, f), g, l.up, prefix_rows(l.up, f), u);
    parallel_for(m * f, kElemGrain, [&](int64_t b, int64_t e) { silu(g + b, u + b, e - b); });
    linear(l.down, prefix_cols(l.down, f), g, m, out);
}

void LlamaModel::ffn(int li, int na) {
    const LlamaLayer& l = layers_[li];
    const int64_t h = cfg_.hidden;
    float *x = x_.data(), *xn = xn_.data(), *tmp = tmp_.data();
    if (!l.acm.enabled()) {
        ffn_rows(l, xn, na, 0, tmp);
        add_inplace(x, tmp, na * h);
        return;
    }
    const int N = l.acm.n;
    int32_t* k = acm_k_.data();
    if (acm_ctl_.force_k >= 0) std::fill(k, k + na, acm_ctl_.force_k);
    else acm_choose(l.acm, xn, na, acm_ctl_.gate_bias, k);
    int64_t* counts = acm_counts_.data() + (int64_t)li * (N + 1);
    std::vector<int> start((size_t)N + 2, 0);  // counting sort by k, descending: rows of k = N first
    for (int i = 0; i < na; ++i) ++counts[k[i]], ++start[N - k[i] + 1];
    for (int j = 1; j <= N + 1; ++j) start[j] += start[j - 1];
    const int run = start[N];  // rows with k > 0
    if (run == 0) return;      // every token skips the FFN: it adds nothing under the residual
    if (start[N - k[0]] == 0 && start[N - k[0] + 1] == na) {  // one k for every row (decode): no gather
        ffn_rows(l, xn, na, k[0], tmp);
        add_inplace(x, tmp, na * h);
        return;
    }
    std::vector<int> fill(start.begin(), start.end() - 1);
    int* order = acm_order_.data();
    for (int i = 0; i < na; ++i) order[fill[N - k[i]]++] = i;
    float *xs = acm_x_.data(), *ys = acm_y_.data();
    parallel_for(run, kRowGrain, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) std::copy(xn + order[r] * h, xn + (order[r] + 1) * h, xs + r * h);
    });
    // one group of rows per k: gate / up / down on the prefix views of its k learners
    for (int kk = N; kk >= 1; --kk) {
        const int r0 = start[N - kk], r1 = start[N - kk + 1];
        if (r1 > r0) ffn_rows(l, xs + (int64_t)r0 * h, r1 - r0, kk, ys + (int64_t)r0 * h);
    }
    parallel_for(run, kRowGrain, [&](int64_t b, int64_t e) {
        for (int64_t r = b; r < e; ++r) {
            float* xr = x + order[r] * h;
            const float* yr = ys + r * h;
            for (int64_t c = 0; c < h; ++c) xr[c] += yr[c];
        }
    });
}

void LlamaModel::eval(const int32_t* tokens, int n, float* logits, bool all_logits) {
    if (n <= 0) return;
    if (n_past_ + n > cfg_.max_ctx) {
        throw std::invalid_argument("the KV cache holds " + std::to_string(cfg_.max_ctx) + " positions; " +
                                    std::to_string(n_past_) + " used, " + std::to_string(n) + " more requested");
    }
    for (int i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= cfg_.vocab) {
            throw std::invalid_argument("token id " + std::to_string(tokens[i]) + " outside the vocabulary of " +
                                        std::to_string(cfg_.vocab));
        }
    }
    reserve(n);
    const int64_t h = cfg_.hidden;
    const int nh = cfg_.n_heads;
    const bool prune = prune_.enabled() && n_past_ == 0 && n > 1;
    float *x = x_.data(), *xn = xn_.data(), *q = q_.data(), *kn = k_.data(), *vn = v_.data();
    float *att = att_.data(), *tmp = tmp_.data();
    embed_rows(q8_, embed_, h, tokens, n, x);
    for (int i = 0; i < n; ++i) {
        idx_[i] = i;
        pos_act_[i] = n_past_ + i;
    }
    if (n_past_ == 0) kept_.clear();  // a new prompt: forget the last one's survivors
    int na = n;        // active rows: the tokens not dropped so far, in prompt order
    size_t next = 0;   // the next pruning layer in prune_.layers
    for (int li = 0; li < cfg_.n_layers; ++li) {
        const LlamaLayer& l = layers_[li];
        rms_norm(x, l.attn_norm.data(), na, (int)h, cfg_.rms_eps, xn);
        const ek_q4x4 vv = l.v.view();
        linears(xn, na, l.q, l.q.view(), q, l.k, l.k.view(), kn, &l.v, &vv, vn);
        rope(q, na, nh, pos_act_.data());
        rope(kn, na, cfg_.n_kv_heads, pos_act_.data());
        const int base = len_[li];
        store_kv(li, base, na, kn, vn);
        std::copy(pos_act_.begin(), pos_act_.begin() + na, pos_.begin() + (int64_t)li * cfg_.max_ctx + base);
        len_[li] = base + na;
        attention(li, na, base, q, att, first_.data());
        double mass = 0.0;
        int counted = 0;
        for (int i = 0; i < na; ++i) {
            if (pos_act_[i] == 0) continue;  // the first token's own attention is 1 by construction
            for (int hh = 0; hh < nh; ++hh) mass += first_[(int64_t)i * nh + hh];
            ++counted;
        }
        mass_[li] = counted ? (float)(mass / ((double)counted * nh)) : 0.0f;
        linear(l.o, att, na, tmp);
        add_inplace(x, tmp, na * h);
        if (prune && next < prune_.layers.size() && prune_.layers[next] == li) {
            ++next;
            prune_rows((int)next, n, na, all_logits);
        }
        rms_norm(x, l.ffn_norm.data(), na, (int)h, cfg_.rms_eps, xn);
        ffn(li, na);
    }
    n_past_ += n;
    const float* hidden = x;
    if (all_logits && na < n) {  // survivors back among the frozen rows of the dropped tokens, in prompt order
        for (int i = 0; i < na; ++i) std::copy(x + i * h, x + (i + 1) * h, frozen_.data() + (int64_t)idx_[i] * h);
        hidden = frozen_.data();
    }
    // the last prompt position is never dropped, so without all_logits it is the last active row
    const int first = all_logits ? 0 : na - 1, rows = all_logits ? n : 1;
    rms_norm(hidden + first * h, final_norm_.data(), rows, (int)h, cfg_.rms_eps, xn);
    // tied, or a rotated model's own Q8_0 head (edgekit/quant/rotate.py)
    head_logits(head_q8_.q.empty() ? q8_ : head_q8_, head_.empty() ? embed_.data() : head_.data(), cfg_.vocab, h, xn,
                rows, logits);
}

}  // namespace edgekit
