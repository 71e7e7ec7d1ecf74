// The edgekit runtime's T5 v1.1 encoder-decoder (edgekit distill's student): the whole forward pass in C++ on the
// W4A8 kernels of the Llama graph (linear.h, the thread pool), with the prompt read once.
//
//   encode(prompt): embedding → per encoder layer [RMSNorm → q/k/v → bidirectional attention + relative position
//     bias → o → residual → RMSNorm → gated GELU FFN → residual] → final RMSNorm; then, once per prompt, every
//     decoder layer's cross-attention keys and values from that output (fp16).
//   eval(decoder tokens): per decoder layer [self-attention over a KV cache with causal position bias → cross-attention
//     over the prompt's keys / values → gated GELU FFN] → final RMSNorm → × d_model^-0.5 → tied head (T5's scaling
//     of a tied output embedding).
//
// T5's conventions: RMSNorm without mean or bias; no 1 / sqrt(d) score scaling (T5 folds it into q); the relative
// position bias table belongs to each stack's first layer and is added in every layer of the stack (bidirectional
// buckets in the encoder, causal in the decoder); cross-attention has no position bias.
#ifndef EDGEKIT_T5_H
#define EDGEKIT_T5_H

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edgekit/llama.h"

namespace edgekit {

struct T5Config {
    int n_enc = 0, n_dec = 0, d_model = 0, n_heads = 0, d_kv = 0, d_ff = 0, vocab = 0;
    int buckets = 32, max_distance = 128;  // relative_attention_num_buckets, relative_attention_max_distance
    float eps = 1e-6f;                      // layer_norm_epsilon
    int max_ctx = 2048;                     // decoder positions (its self-attention KV cache)
    int decoder_start = 0;                  // decoder_start_token_id
};

struct T5Attention {
    Q4Weight q, k, v, o;
};

struct T5Layer {
    std::vector<float> attn_norm, cross_norm, ffn_norm;  // [d_model]; cross_norm empty in the encoder
    T5Attention self, cross;                             // cross: decoder layers only
    Q4Weight wi0, wi1, wo;                               // gelu_tanh(wi0 x) * (wi1 x) → wo
};

// T5's relative position bucket of key position minus query position (transformers' _relative_position_bucket).
int t5_bucket(int relative, bool bidirectional, int buckets, int max_distance);

class T5Model {
public:
    // Validates every shape against the config; throws std::invalid_argument naming the first mismatch. The tied
    // embedding / head is q8 (lm_head_bits 8) or else embed16 (fp16 [vocab, d_model]); enc_bias and dec_bias are the
    // first layers' relative position tables [buckets, n_heads]; enc_norm and dec_norm the final norms [d_model].
    T5Model(const T5Config& cfg, std::vector<uint16_t> embed16, Q8Table q8, std::vector<float> enc_bias,
            std::vector<float> dec_bias, std::vector<float> enc_norm, std::vector<float> dec_norm,
            std::vector<T5Layer> encoder, std::vector<T5Layer> decoder);

    const T5Config& config() const { return cfg_; }
    // Run the encoder over the prompt tokens [n] (n >= 1), compute every decoder layer's cross-attention K/V from
    // its output, and empty the decoder's cache.
    void encode(const int32_t* tokens, int n);
    // Decoder tokens [n] at positions n_past .. n_past + n - 1, appended to the self-attention cache; logits
    // [n, vocab] (all_logits) or [vocab] of the last. Throws when no prompt was encoded or the cache is full.
    void eval(const int32_t* tokens, int n, float* logits, bool all_logits);
    int n_past() const { return n_past_; }
    int n_source() const { return n_src_; }
    // Empties the decoder's cache; the encoded prompt and its cross-attention K/V stay.
    void reset() { n_past_ = 0; }
    // How many times each decoder layer's cross-attention K/V were computed since loading (one per encode: the
    // decode steps only read them).
    int64_t cross_kv_computations() const { return cross_kv_runs_; }
    int64_t memory_bytes() const;

private:
    void check_tokens(const int32_t* tokens, int n) const;
    void reserve(int n);
    void attention(const float* q, int n, int pos0, const uint16_t* kt, int64_t ldk, const uint16_t* v, int len,
                   bool causal, const float* rel, int64_t back, int64_t span, float* out) const;
    void ffn(const T5Layer& l, int n);

    T5Config cfg_;
    std::vector<uint16_t> embed_;  // fp16 [vocab, d_model], or empty when q8_ holds the table
    Q8Table q8_;
    std::vector<float> enc_bias_, dec_bias_, enc_norm_, dec_norm_;
    std::vector<T5Layer> enc_, dec_;
    // fp16 caches in the attention kernel's layout (attention.h: keys transposed [inner][slot], values
    // [slot][inner]): the decoder's self-attention ([layer], max_ctx slots), the prompt's cross-attention K/V
    // ([layer], n_src_ slots), the encoder layer's own (scratch, n_src_ slots); key rows kt_row_stride(slots) apart,
    // all in the weight arena's huge-page chunks (as the Llama cache: every pass reads d_kv rows of a head)
    WeightVec<uint16_t> self_kt_, self_v_, cross_kt_, cross_v_, enc_kt_, enc_v_;
    std::vector<float> x_, xn_, q_, k_, v_, att_, tmp_, g_, u_;  // scratch, grown to the largest batch
    std::vector<float> enc_rel_, dec_rel_;  // position bias per head and relative position (t5.cpp: relative_bias)
    int capacity_ = 0, n_src_ = 0, n_past_ = 0;
    int64_t cross_kv_runs_ = 0;
};

// Reads a T5 artifact (family t5, task seq2seq-lm: edgekit quantize of a T5 v1.1 student with gated
// gelu_pytorch_tanh and a tied head; every linear W4A8) and builds the model with a decoder cache of max_ctx
// positions (<= 0: kDefaultMaxCtx). Throws ArtifactError (kIO / kFormat / kUnsupported) with a one-line message,
// std::invalid_argument when max_ctx exceeds kMaxCtxLimit (load_llama.h).
std::unique_ptr<T5Model> load_t5(const std::string& path, int max_ctx);

}  // namespace edgekit

#endif  // EDGEKIT_T5_H
