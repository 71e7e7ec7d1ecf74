// T5Model (t5.h): the T5 v1.1 encoder-decoder on the runtime's shared steps (blocks.h: W4A8 linears, RMSNorm,
// residual adds, the tied Q8_0 / fp16 table) and attention kernel (ek_attn_f16_f32 with its position-bias rows,
// scale 1), split over the thread pool. The math follows transformers' T5ForConditionalGeneration: relative position
// buckets (_relative_position_bucket), T5LayerNorm, gelu_pytorch_tanh, the tied head's d_model^-0.5; keys and
// values are kept in fp16 as in the Llama graph.
#include "edgekit/t5.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "edgekit/attention.h"
#include "edgekit/dispatch.h"
#include "edgekit/kernels.h"
#include "edgekit/linear.h"
#include "edgekit/threadpool.h"

namespace edgekit {

int t5_bucket(int relative, bool bidirectional, int buckets, int max_distance) {
    int bucket = 0, n = buckets;
    if (bidirectional) {
        n /= 2;
        if (relative > 0) bucket += n;
        relative = std::abs(relative);
    } else {
        relative = -std::min(relative, 0);
    }
    const int exact = n / 2;
    if (relative < exact) return bucket + relative;
    // log-spaced beyond max_exact (in double: the same buckets as torch's float32 for every distance measured,
    // |relative| < 5000 at 32 / 128), capped at the last bucket
    const int large = exact + (int)(std::log((double)relative / exact) / std::log((double)max_distance / exact) *
                                    (n - exact));
    return bucket + std::min(large, n - 1);
}

namespace {

// Per head, the bias of every relative position rel = key - query in [-back, fwd] (table [buckets, heads]):
// out[h * (back + fwd + 1) + back + rel], so that one query's bias row over its keys is one contiguous slice.
void relative_bias(const std::vector<float>& table, int heads, int buckets, int max_distance, bool bidirectional,
                   int back, int fwd, std::vector<float>& out) {
    const int64_t span = (int64_t)back + fwd + 1;
    out.resize((size_t)(heads * span));
    for (int64_t r = 0; r < span; ++r) {
        const int b = t5_bucket((int)(r - back), bidirectional, buckets, max_distance);
        for (int h = 0; h < heads; ++h) out[(size_t)(h * span + r)] = table[(size_t)b * heads + h];
    }
}

}  // namespace

T5Model::T5Model(const T5Config& cfg, std::vector<uint16_t> embed16, Q8Table q8, std::vector<float> enc_bias,
                 std::vector<float> dec_bias, std::vector<float> enc_norm, std::vector<float> dec_norm,
                 std::vector<T5Layer> encoder, std::vector<T5Layer> decoder)
    : cfg_(cfg), embed_(std::move(embed16)), q8_(std::move(q8)), enc_bias_(std::move(enc_bias)),
      dec_bias_(std::move(dec_bias)), enc_norm_(std::move(enc_norm)), dec_norm_(std::move(dec_norm)),
      enc_(std::move(encoder)), dec_(std::move(decoder)) {
    const int64_t h = cfg_.d_model, inner = (int64_t)cfg_.n_heads * cfg_.d_kv, table = (int64_t)cfg_.vocab * h;
    check(cfg_.n_enc > 0 && cfg_.n_dec > 0 && h > 0 && cfg_.n_heads > 0 && cfg_.d_kv > 0 && cfg_.d_ff > 0 &&
              cfg_.vocab > 0 && cfg_.max_ctx > 0,
          "sizes must be positive");
    check(cfg_.buckets >= 2 && cfg_.max_distance > cfg_.buckets / 4,
          "relative_attention_num_buckets must be >= 2 and max_distance above a quarter of it");
    check(cfg_.decoder_start >= 0 && cfg_.decoder_start < cfg_.vocab, "decoder_start_token_id outside the vocabulary");
    check((int)enc_.size() == cfg_.n_enc && (int)dec_.size() == cfg_.n_dec, "layer counts do not match the config");
    if (!q8_.q.empty()) {
        check(embed_.empty() && h % 32 == 0 && (int64_t)q8_.q.size() == table && (int64_t)q8_.d.size() == table / 32,
              "the Q8_0 table must be [vocab, d_model] codes and [vocab, d_model / 32] scales");
    } else {
        check((int64_t)embed_.size() == table, "the embedding must be [vocab, d_model]");
    }
    const int64_t nb = (int64_t)cfg_.buckets * cfg_.n_heads;
    check((int64_t)enc_bias_.size() == nb && (int64_t)dec_bias_.size() == nb,
          "relative_attention_bias must be [buckets, heads]");
    check((int64_t)enc_norm_.size() == h && (int64_t)dec_norm_.size() == h, "final norms must be [d_model]");
    for (int s = 0; s < 2; ++s) {
        std::vector<T5Layer>& stack = s ? dec_ : enc_;
        for (size_t i = 0; i < stack.size(); ++i) {
            T5Layer& l = stack[i];
            const std::string p = std::string(s ? "decoder" : "encoder") + " layer " + std::to_string(i) + " ";
            check((int64_t)l.attn_norm.size() == h && (int64_t)l.ffn_norm.size() == h &&
                      (int64_t)l.cross_norm.size() == (s ? h : 0),
                  p + "norms must be [d_model]");
            std::vector<std::pair<Q4Weight*, std::string>> ws = {{&l.self.q, "q"}, {&l.self.k, "k"},
                                                                 {&l.self.v, "v"}, {&l.self.o, "o"},
                                                                 {&l.wi0, "wi_0"}, {&l.wi1, "wi_1"},
                                                                 {&l.wo, "wo"}};
            if (s) {
                for (auto w : {std::make_pair(&l.cross.q, "cross q"), std::make_pair(&l.cross.k, "cross k"),
                               std::make_pair(&l.cross.v, "cross v"), std::make_pair(&l.cross.o, "cross o")})
                    ws.emplace_back(w.first, w.second);
            }
            for (auto& [w, name] : ws) {
                const bool out_h = name == "o" || name == "cross o" || name == "wo";
                const int64_t n = out_h ? h : name.rfind("wi", 0) == 0 ? cfg_.d_ff : inner;
                const int64_t k = name == "wo" ? cfg_.d_ff : out_h ? inner : h;
                check_weight(*w, n, k, p + name);
                if (preferred_q4_rows() == EK_Q4X16_ROWS) regroup_q4x16(*w);
            }
        }
    }
    // the decoder's causal bias rows for every position the cache holds, once
    relative_bias(dec_bias_, cfg_.n_heads, cfg_.buckets, cfg_.max_distance, false, cfg_.max_ctx - 1, 0, dec_rel_);
    self_kt_.assign((size_t)(cfg_.n_dec * inner * kt_row_stride(cfg_.max_ctx)), 0);
    self_v_.assign((size_t)(cfg_.n_dec * inner * cfg_.max_ctx), 0);
}

int64_t T5Model::memory_bytes() const {
    int64_t b = 2 * (int64_t)embed_.size() + (int64_t)q8_.q.size() + 2 * (int64_t)q8_.d.size();
    for (const auto* stack : {&enc_, &dec_}) {
        for (const T5Layer& l : *stack) {
            for (const Q4Weight* w : {&l.self.q, &l.self.k, &l.self.v, &l.self.o, &l.cross.q, &l.cross.k, &l.cross.v,
                                      &l.cross.o, &l.wi0, &l.wi1, &l.wo})
                b += (int64_t)w->qs.size() + 2 * (int64_t)w->d.size();
            b += 4 * (int64_t)(l.attn_norm.size() + l.cross_norm.size() + l.ffn_norm.size());
        }
    }
    for (const auto* v : {&self_kt_, &self_v_, &cross_kt_, &cross_v_, &enc_kt_, &enc_v_}) b += 2 * (int64_t)v->size();
    for (const auto* v : {&x_, &xn_, &q_, &k_, &v_, &att_, &tmp_, &g_, &u_, &enc_rel_, &dec_rel_})
        b += 4 * (int64_t)v->capacity();
    return b;
}

void T5Model::reserve(int n) {
    if (n <= capacity_) return;
    const size_t h = cfg_.d_model, inner = (size_t)cfg_.n_heads * cfg_.d_kv;
    for (auto* v : {&x_, &xn_, &tmp_}) v->resize(n * h);
    for (auto* v : {&q_, &k_, &v_, &att_}) v->resize(n * inner);
    for (auto* v : {&g_, &u_}) v->resize(n * (size_t)cfg_.d_ff);
    capacity_ = n;
}

// n query rows q [n, heads, d_kv] at positions pos0 .. pos0 + n - 1 over the fp16 keys (transposed, kt [inner][ldk])
// and values (v [slot][inner]): each query sees every slot 0 .. len - 1 (causal: 0 .. its position), the bias row
// of its position from rel (relative_bias with `back` slots before position 0; null: none); out [n, inner].
//
// One task per head and block of up to kQueryBlock queries that see the same slots (a causal row sees its own
// number of slots, so there a block is one query): the kernel runs a block's queries as one group, so every key
// and value it converts serves all of them. kQueryBlock is a multiple of every kernel's own block of query rows
// (4; 6 on AVX2; 12 on AVX-512). The tasks go head by head, so that a thread's consecutive tasks read one head's keys and values
// (256 KB at 1024 slots: they stay in L2) instead of all heads' (2.3 MB). A query's result does not depend on its
// block (kernels.h), so decode and prefill give the same bits.
void T5Model::attention(const float* q, int n, int pos0, const uint16_t* kt, int64_t ldk, const uint16_t* v, int len,
                        bool causal, const float* rel, int64_t back, int64_t span, float* out) const {
    static const ek_attn_f16_f32_fn attn = kernel<Op::attn_f16_f32>();
    constexpr int kQueryBlock = 12;
    const int heads = cfg_.n_heads, dk = cfg_.d_kv, block = causal ? 1 : kQueryBlock;
    const int64_t inner = (int64_t)heads * dk, blocks = (n + block - 1) / block;
    parallel_for(blocks * heads, 1, [&](int64_t b, int64_t e) {
        thread_local std::vector<float> p, qb, ob;
        const int64_t cap = (int64_t)kQueryBlock * len;
        if ((int64_t)p.size() < cap) p.resize((size_t)cap);
        qb.resize((size_t)(kQueryBlock * dk));
        ob.resize((size_t)(kQueryBlock * dk));
        float first[kQueryBlock];
        for (int64_t task = b; task < e; ++task) {
            const int i0 = (int)(task % blocks) * block, hh = (int)(task / blocks), g = std::min(block, n - i0);
            const int visible = causal ? pos0 + i0 + 1 : len;
            for (int j = 0; j < g; ++j) {
                const float* src = q + (int64_t)(i0 + j) * inner + (int64_t)hh * dk;
                std::copy(src, src + dk, qb.data() + (int64_t)j * dk);
            }
            // the bias of key t for query i is rel[hh][back + t - i]: query i0 + j's row starts j slots before
            // i0's, so the kernel reads the rows in place with a stride of -1
            const float* bias = rel ? rel + hh * span + back - (pos0 + i0) : nullptr;
            attn(qb.data(), g, dk, kt + (int64_t)hh * dk * ldk, ldk, v + (int64_t)hh * dk, inner, visible, 1.0f, bias,
                 -1, nullptr, p.data(), ob.data(), first);
            for (int j = 0; j < g; ++j)
                std::copy(ob.data() + (int64_t)j * dk, ob.data() + (int64_t)(j + 1) * dk,
                          out + (int64_t)(i0 + j) * inner + (int64_t)hh * dk);
        }
    });
}

// gelu_tanh(wi0 xn) * (wi1 xn) → wo, added into x (n rows)
void T5Model::ffn(const T5Layer& l, int n) {
    static const ek_gelu_mul_f32_fn gelu = kernel<Op::gelu_mul_f32>();
    float *g = g_.data(), *u = u_.data();
    linears(xn_.data(), n, l.wi0, l.wi0.view(), g, l.wi1, l.wi1.view(), u);
    parallel_for((int64_t)n * cfg_.d_ff, kElemGrain, [&](int64_t b, int64_t e) { gelu(g + b, u + b, e - b); });
    linear(l.wo, g, n, tmp_.data());
    add_inplace(x_.data(), tmp_.data(), (int64_t)n * cfg_.d_model);
}

void T5Model::check_tokens(const int32_t* tokens, int n) const {
    for (int i = 0; i < n; ++i) {
        if (tokens[i] < 0 || tokens[i] >= cfg_.vocab) {
            throw std::invalid_argument("token id " + std::to_string(tokens[i]) + " outside the vocabulary of " +
                                        std::to_string(cfg_.vocab));
        }
    }
}

void T5Model::encode(const int32_t* tokens, int n) {
    if (n <= 0) throw std::invalid_argument("encode: the prompt must hold at least one token");
    check_tokens(tokens, n);
    reserve(n);
    const int64_t h = cfg_.d_model, inner = (int64_t)cfg_.n_heads * cfg_.d_kv;
    float *x = x_.data(), *xn = xn_.data(), *q = q_.data(), *kn = k_.data(), *vn = v_.data();
    embed_rows(q8_, embed_, h, tokens, n, x);
    // the first layer's bias table, for every layer (T5: computed once per stack)
    relative_bias(enc_bias_, cfg_.n_heads, cfg_.buckets, cfg_.max_distance, true, n - 1, n - 1, enc_rel_);
    const int64_t ldk = kt_row_stride(n);
    enc_kt_.resize((size_t)(inner * ldk));
    enc_v_.resize((size_t)(inner * n));
    for (const T5Layer& l : enc_) {
        rms_norm(x, l.attn_norm.data(), n, (int)h, cfg_.eps, xn);
        const ek_q4x4 vv = l.self.v.view();
        linears(xn, n, l.self.q, l.self.q.view(), q, l.self.k, l.self.k.view(), kn, &l.self.v, &vv, vn);
        store_kv_fp16(kn, vn, n, inner, 0, enc_kt_.data(), ldk, enc_v_.data());
        attention(q, n, 0, enc_kt_.data(), ldk, enc_v_.data(), n, false, enc_rel_.data(), n - 1, 2 * (int64_t)n - 1,
                  att_.data());
        linear(l.self.o, att_.data(), n, tmp_.data());
        add_inplace(x, tmp_.data(), n * h);
        rms_norm(x, l.ffn_norm.data(), n, (int)h, cfg_.eps, xn);
        ffn(l, n);
    }
    rms_norm(x, enc_norm_.data(), n, (int)h, cfg_.eps, xn);
    // every decoder layer's cross-attention keys and values: once per prompt, read by every decoded token
    cross_kt_.resize((size_t)(cfg_.n_dec * inner * ldk));
    cross_v_.resize((size_t)(cfg_.n_dec * inner * n));
    for (int li = 0; li < cfg_.n_dec; ++li) {
        const T5Layer& l = dec_[li];
        linears(xn, n, l.cross.k, l.cross.k.view(), kn, l.cross.v, l.cross.v.view(), vn);
        store_kv_fp16(kn, vn, n, inner, 0, cross_kt_.data() + li * inner * ldk, ldk, cross_v_.data() + li * inner * n);
    }
    ++cross_kv_runs_;
    n_src_ = n;
    n_past_ = 0;
}

void T5Model::eval(const int32_t* tokens, int n, float* logits, bool all_logits) {
    if (n <= 0) return;
    if (n_src_ == 0) throw std::invalid_argument("no prompt encoded: encode(prompt) runs before the decoder");
    if (n_past_ + n > cfg_.max_ctx) {
        throw std::invalid_argument("the decoder's KV cache holds " + std::to_string(cfg_.max_ctx) + " positions; " +
                                    std::to_string(n_past_) + " used, " + std::to_string(n) + " more requested");
    }
    check_tokens(tokens, n);
    reserve(n);
    const int64_t h = cfg_.d_model, inner = (int64_t)cfg_.n_heads * cfg_.d_kv, ldk = kt_row_stride(cfg_.max_ctx);
    const int64_t ld_src = kt_row_stride(n_src_);
    float *x = x_.data(), *xn = xn_.data(), *q = q_.data(), *kn = k_.data(), *vn = v_.data(), *att = att_.data();
    float* tmp = tmp_.data();
    embed_rows(q8_, embed_, h, tokens, n, x);
    const int base = n_past_;
    for (int li = 0; li < cfg_.n_dec; ++li) {
        const T5Layer& l = dec_[li];
        uint16_t* kt = self_kt_.data() + li * inner * ldk;
        uint16_t* vc = self_v_.data() + li * inner * cfg_.max_ctx;
        rms_norm(x, l.attn_norm.data(), n, (int)h, cfg_.eps, xn);
        const ek_q4x4 vv = l.self.v.view();
        linears(xn, n, l.self.q, l.self.q.view(), q, l.self.k, l.self.k.view(), kn, &l.self.v, &vv, vn);
        store_kv_fp16(kn, vn, n, inner, base, kt, ldk, vc);
        attention(q, n, base, kt, ldk, vc, base + n, true, dec_rel_.data(), cfg_.max_ctx - 1, cfg_.max_ctx, att);
        linear(l.self.o, att, n, tmp);
        add_inplace(x, tmp, n * h);
        // cross-attention over the prompt's keys and values (no position bias)
        rms_norm(x, l.cross_norm.data(), n, (int)h, cfg_.eps, xn);
        linear(l.cross.q, xn, n, q);
        attention(q, n, 0, cross_kt_.data() + li * inner * ld_src, ld_src, cross_v_.data() + li * inner * n_src_,
                  n_src_, false, nullptr, 0, 0, att);
        linear(l.cross.o, att, n, tmp);
        add_inplace(x, tmp, n * h);
        rms_norm(x, l.ffn_norm.data(), n, (int)h, cfg_.eps, xn);
        ffn(l, n);
    }
    n_past_ += n;
    const int first = all_logits ? 0 : n - 1, rows = all_logits ? n : 1;
    rms_norm(x + first * h, dec_norm_.data(), rows, (int)h, cfg_.eps, xn);
    // transformers scales the decoder output by d_model^-0.5 before a tied head (float32, as torch multiplies)
    const float scale = (float)std::pow((double)cfg_.d_model, -0.5);
    for (int64_t c = 0; c < rows * h; ++c) xn[c] *= scale;
    head_logits(q8_, embed_.data(), cfg_.vocab, h, xn, rows, logits);
}

}  // namespace edgekit
