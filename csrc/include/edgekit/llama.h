// The edgekit runtime's Llama-family decoder: the whole forward pass in C++ on the W4A8 kernels, with a KV cache.
//
// First step of the runtime issue: the engine is built from arrays handed over by the caller (the Python side reads
// the artifact); the artifact reader in C++, the C API and the int8 KV cache come next.
#ifndef EDGEKIT_LLAMA_H
#define EDGEKIT_LLAMA_H

#include <cstdint>
#include <string>
#include <vector>

#include "edgekit/formats.h"

namespace edgekit {

struct LlamaConfig {
    int n_layers = 0, hidden = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, ffn = 0, vocab = 0;
    float rms_eps = 1e-5f, rope_theta = 10000.0f;
    int max_ctx = 2048;  // KV cache length
};

// One int4 weight in the q4x4 layout (owned copies of the packed arrays).
struct Q4Weight {
    std::vector<uint8_t> qs;
    std::vector<uint16_t> d;
    int64_t n = 0, k = 0;
    ek_q4x4 view() const { return {qs.data(), d.data(), n, k}; }
};

struct LlamaLayer {
    std::vector<float> attn_norm, ffn_norm;  // [hidden]
    Q4Weight q, k, v, o, gate, up, down;
};

class LlamaModel {
public:
    // Validates every shape against the config; throws std::invalid_argument naming the first mismatch.
    // embed [vocab * hidden] and final_norm [hidden] are float32 arrays of the sizes the config implies, head
    // [vocab * hidden] or nullptr when tied to the embedding; they need only live during the constructor (the model
    // copies what it keeps), so a loader can pass pointers straight into a memory-mapped file.
    LlamaModel(const LlamaConfig& cfg, const float* embed, const float* final_norm, std::vector<LlamaLayer> layers,
               const float* head);

    const LlamaConfig& config() const { return cfg_; }
    int n_past() const { return n_past_; }
    void reset() { n_past_ = 0; }
    // Forget the cache after position n (keep tokens [0, n)).
    void truncate(int n);

    // Run tokens [n] at positions n_past .. n_past + n - 1 and append them to the cache. Writes logits for every
    // position ([n, vocab]) when all_logits, else for the last one only ([vocab]). Throws when the cache is full.
    void eval(const int32_t* tokens, int n, float* logits, bool all_logits);

private:
    void attention(int layer, int n, const float* q, float* out) const;

    LlamaConfig cfg_;
    std::vector<float> embed_, final_norm_, head_;  // head_ empty: tied to embed_
    std::vector<LlamaLayer> layers_;
    std::vector<float> k_cache_, v_cache_;  // [layer][pos][kv_head][head_dim]
    std::vector<float> inv_freq_;           // [head_dim / 2]
    int n_past_ = 0;
};

}  // namespace edgekit

#endif  // EDGEKIT_LLAMA_H
