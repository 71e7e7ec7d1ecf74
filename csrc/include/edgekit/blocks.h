// The steps every graph of the C++ runtime is built from (the Llama decoder, llama.h; the T5 encoder-decoder, t5.h):
// int4 weights with their activation quantization, RMSNorm, residual adds, the tied Q8_0 / fp16 table as embedding
// and LM head. One definition each, so that the graphs round every step the same way.
#ifndef EDGEKIT_BLOCKS_H
#define EDGEKIT_BLOCKS_H

#include <cstdint>
#include <string>
#include <vector>

#include "edgekit/formats.h"
#include "edgekit/kernels.h"
#include "edgekit/weight_arena.h"

namespace edgekit {

// One int4 weight in the q4x4 layout (owned copies of the packed arrays).
// How a linear quantizes its input to int8: dynamically per token or per block of 32, or on a static per-tensor grid.
enum class ActQuant : uint8_t { kPerToken, kPerBlock, kPerTensor };

struct Q4Weight {
    WeightVec<uint8_t> qs;  // in the weight chunks (weight_arena.h): decode streams them, huge pages help
    WeightVec<uint16_t> d;
    int64_t n = 0, k = 0;
    ActQuant act = ActQuant::kPerToken;
    float act_scale = 0.0f;   // kPerTensor: the grid's step (TRIP recipes)
    int rows = EK_Q4X4_ROWS;  // the layout: q4x4, or q4x16 where the kernels prefer it (AVX-512, formats.h)
    ek_q4x4 view() const { return {qs.data(), d.data(), n, k, 0}; }
};

// The tied embedding / LM head in Q8_0 (the artifact's lm_head_bits: 8): int8 codes [vocab, hidden] and one fp16
// scale per 32 of them [vocab, hidden / 32] (kernels.h: ek_gemm_q8_0_f32, ek_quantize_q8_0).
struct Q8Table {
    WeightVec<int8_t> q;
    WeightVec<uint16_t> d;
    // lm_head_act_bits 8: the head's input is quantized per block of 32 too and meets the codes in integer dot
    // products (ek_gemm_q8_0_q8b, as llama.cpp runs a Q8_0 head); false: float activations (ek_gemm_q8_0_f32)
    bool act8 = false;
};

// Rows per parallel task of the row-wise steps (norms, RoPE): enough work to amortize a wake-up.
constexpr int64_t kRowGrain = 16;
// Elements per parallel task of the element-wise steps (residual adds, gated activations).
constexpr int64_t kElemGrain = 16384;

// Throws std::invalid_argument("runtime model: " + what) unless ok.
void check(bool ok, const std::string& what);
// w must be [n, k] in the q4x4 or q4x16 layout (k a multiple of 32); throws naming `name`.
void check_weight(const Q4Weight& w, int64_t n, int64_t k, const std::string& name);
// w's arrays become the q4x16 regrouping (ek_pack_q4x16) of the q4x4 view v of [w.n, w.k], in the weight chunks;
// v may view w's own arrays.
void set_q4x16(Q4Weight& w, const ek_q4x4& v);
// Where preferred_q4_rows() says q4x16 (linear.h), a q4x4 weight is regrouped once (loaders make q4x16 directly).
void regroup_q4x16(Q4Weight& w);

// out[i] = w * x[i] / sqrt(mean(x[i]^2) + eps) for n rows of dim: the mean square summed in double and 1 / sqrt in
// double, each rounded once to float (independent of summation order and libm; the PyTorch kernel path's rule).
void rms_norm(const float* x, const float* w, int n, int dim, float eps, float* out);
// x[c] += y[c], c < n.
void add_inplace(float* x, const float* y, int64_t n);

// y = W x for the rows x [n, v.k] through the view v of w (the whole weight, or a prefix of an ACM's learners),
// activations quantized as w's recipe says.
void linear(const Q4Weight& w, const ek_q4x4& v, const float* x, int n, float* y);
void linear(const Q4Weight& w, const float* x, int n, float* y);
// Linears reading the same rows x (q, k, v; gate, up; c null for two) through views va, vb (, vc): with per-block
// activations, one quantization of x and one dispatch of the pool for all of them (linear_q4x4_blocks_multi, the
// same bits as one call each); otherwise one linear() each.
void linears(const float* x, int n, const Q4Weight& a, const ek_q4x4& va, float* ya, const Q4Weight& b,
             const ek_q4x4& vb, float* yb, const Q4Weight* c = nullptr, const ek_q4x4* vc = nullptr,
             float* yc = nullptr);

// The embedding rows of tokens [n] into x [n, h]: a Q8_0 table's code times its block scale (exactly the head's value
// of that weight) when q8 holds one, else the fp16 table's values.
void embed_rows(const Q8Table& q8, const std::vector<uint16_t>& table16, int64_t h, const int32_t* tokens, int n,
                float* x);
// logits [rows, vocab] = table · xn [rows, h] on the Q8_0 table (gemm_q8_0_f32) or the fp16 one (gemm_f16_f32): one
// fixed summation order per logit (kernels.h), so decode and prefill give the same bits.
void head_logits(const Q8Table& q8, const uint16_t* table16, int vocab, int64_t h, const float* xn, int rows,
                 float* logits);

}  // namespace edgekit

#endif  // EDGEKIT_BLOCKS_H
