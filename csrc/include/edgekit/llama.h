// The edgekit runtime's Llama-family decoder: the whole forward pass in C++ on the W4A8 kernels, with a KV cache.
//
// Memory: the int4 linears in the q4x4 layout, the embedding (and an untied LM head) in fp16, the KV cache in fp16;
// activations and norms in fp32. Scratch buffers grow to the largest batch seen and are reused, so the decode path
// allocates nothing per token.
#ifndef EDGEKIT_LLAMA_H
#define EDGEKIT_LLAMA_H

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "edgekit/acm.h"
#include "edgekit/attention.h"
#include "edgekit/blocks.h"
#include "edgekit/formats.h"
#include "edgekit/prune.h"

namespace edgekit {

struct LlamaConfig {
    int n_layers = 0, hidden = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, ffn = 0, vocab = 0;
    float rms_eps = 1e-5f, rope_theta = 10000.0f;
    int max_ctx = 2048;  // KV cache length
};

struct LlamaLayer {
    std::vector<float> attn_norm, ffn_norm;  // [hidden]
    Q4Weight q, k, v, o, gate, up, down;
    AcmGate acm;  // an adaptive computation module's gate (acm.h); empty: a dense FFN
};

class LlamaModel {
public:
    // Validates every shape against the config; throws std::invalid_argument naming the first mismatch.
    // embed16 and head16 are fp16 tables (IEEE half bits, [vocab * hidden]; head16 empty when the head is tied to
    // the embedding), which a loader converts chunk by chunk so that the float32 file pages never all sit in memory
    // at once; final_norm [hidden] is float32, copied here, so it need only outlive the constructor.
    // With a non-empty q8 table, embed16 and head16 are empty: embedding and head are that one Q8_0 table, or, with
    // a non-empty head_q8 too, q8 is the embedding and head_q8 the (untied) head.
    LlamaModel(const LlamaConfig& cfg, std::vector<uint16_t> embed16, const float* final_norm,
               std::vector<LlamaLayer> layers, std::vector<uint16_t> head16, Q8Table q8 = {}, Q8Table head_q8 = {});

    const LlamaConfig& config() const { return cfg_; }
    int n_past() const { return n_past_; }
    void reset();
    // Forget the cache after position n (keep tokens [0, n)).
    void truncate(int n);

    // Run tokens [n] at positions n_past .. n_past + n - 1 and append them to the cache. Writes logits for every
    // position ([n, vocab]) when all_logits, else for the last one only ([vocab]). Throws when the cache is full.
    //
    // With a pruning schedule (set_pruning), a prefill into an empty cache (n_past == 0, n > 1) drops tokens at the
    // pruning layers (prune.h): later layers neither compute nor cache them. A dropped token's logits (all_logits)
    // come from its hidden state frozen where it was dropped. Decode and later batches are never pruned.
    void eval(const int32_t* tokens, int n, float* logits, bool all_logits);

    // Token pruning for prompt prefills; an empty schedule turns it off. Throws std::invalid_argument when the
    // schedule does not fit this model.
    void set_pruning(const PruneSchedule& s);
    const PruneSchedule& pruning() const { return prune_; }
    // Prompt indices that survived each pruning layer of the last pruned prefill ([m][kept]).
    const std::vector<std::vector<int32_t>>& last_kept() const { return kept_; }
    // Per layer, the mean over the last eval's query tokens (the first position excluded) of their attention
    // probability on position 0, averaged over heads: how much each layer's attention sinks into the first token.
    const std::vector<float>& first_token_mass() const { return mass_; }
    // Positions held by each layer's KV cache (fewer than n_past in layers after a pruning layer).
    int cached(int layer) const { return len_.at(layer); }

    // Adaptive computation modules (acm.h): whether any layer has one, how they run, and what they ran: per layer,
    // tokens per k (acm_counts()[layer * (N + 1) + k]; N = acm_learners(); empty without ACM) since the last reset.
    bool has_acm() const { return acm_n_ > 0; }
    int acm_learners() const { return acm_n_; }
    void set_acm(const AcmControl& c);
    const AcmControl& acm() const { return acm_ctl_; }
    const std::vector<int64_t>& acm_counts() const { return acm_counts_; }
    void reset_acm_counts() { std::fill(acm_counts_.begin(), acm_counts_.end(), 0); }

    // Bytes held by weights, the KV cache and scratch (what the model adds to the process).
    int64_t memory_bytes() const;

private:
    void attention(int layer, int n, int base, const float* q, float* out, float* first) const;
    void rope(float* v, int n, int heads, const int32_t* pos) const;
    void store_kv(int layer, int base, int n, const float* k, const float* v);
    // slots per row of the transposed key cache (attention.h: max_ctx plus one cache line)
    int64_t kt_stride() const { return kt_row_stride(cfg_.max_ctx); }
    void reserve(int n);
    void prune_rows(int j, int n0, int& na, bool keep_frozen);
    // The FFN of layer li on the na rows of xn_, added into x_: dense, or its ACM's learners per token.
    void ffn(int li, int na);
    void ffn_rows(const LlamaLayer& l, const float* xn, int m, int k, float* out);

    LlamaConfig cfg_;
    std::vector<uint16_t> embed_, head_;  // fp16 [vocab, hidden]; head_ empty: tied to embed_
    Q8Table q8_;                          // or, when not empty, the tied table in Q8_0 (embed_ and head_ empty)
    Q8Table head_q8_;                     // not empty: an untied Q8_0 head (q8_ is then the embedding alone)
    std::vector<float> final_norm_;
    std::vector<LlamaLayer> layers_;
    // fp16 caches: keys transposed, [layer][kv_head][head_dim][slot] (a head's keys are consecutive lanes for the
    // attention kernel); values [layer][slot][kv_head][head_dim]. In the huge-page chunks of the weights: a decode
    // step reads every key row of a head (head_dim rows, each in its own 4 KiB page otherwise)
    WeightVec<uint16_t> k_cache_, v_cache_;
    std::vector<int32_t> pos_;                 // [layer][slot]: the position cached in each slot (increasing)
    std::vector<int> len_;                     // [layer]: slots in use
    std::vector<float> rope_cos_, rope_sin_;   // [position][head_dim / 2]: cos / sin of position * inv_freq
    // scratch of the forward pass, grown to the largest batch seen
    std::vector<float> x_, xn_, q_, k_, v_, att_, tmp_, g_, u_;
    std::vector<float> first_, score_, frozen_;  // pruning: p(→ position 0) per (row, head), per row; dropped rows
    std::vector<int32_t> idx_, pos_act_;           // prompt index and position of each active row
    std::vector<int> keep_rows_;
    int capacity_ = 0;
    int n_past_ = 0;
    PruneSchedule prune_;
    std::vector<std::vector<int32_t>> kept_;
    std::vector<float> mass_;
    int acm_n_ = 0;                            // learners per ACM layer (0: no ACM)
    AcmControl acm_ctl_;
    std::vector<int64_t> acm_counts_;          // [layer][k]
    std::vector<int32_t> acm_k_;               // k of each active row
    std::vector<int> acm_order_;               // rows sorted by k, descending
    std::vector<float> acm_x_, acm_y_;         // those rows' FFN inputs and outputs
};

}  // namespace edgekit

#endif  // EDGEKIT_LLAMA_H
