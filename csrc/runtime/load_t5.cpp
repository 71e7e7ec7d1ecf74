// load_t5 (t5.h): a T5 artifact (edgekit quantize of edgekit distill's student: family t5, task seq2seq-lm) →
// T5Config and the model's arrays, with the checks and readers of the Llama loader (load_util.h).
//
// Everything the runtime cannot run is refused with the key or linear it concerns: another activation than gated
// gelu_pytorch_tanh, an untied head, a linear that is not W4A8.
#include <cmath>
#include <set>
#include <stdexcept>
#include <string>

#include "edgekit/load_llama.h"
#include "edgekit/load_util.h"
#include "edgekit/t5.h"

namespace edgekit {

using namespace load;
using K = ArtifactError::Kind;
using json::Type;
using json::Value;

namespace {

const char* const kT5Elsewhere = "; run it with `edgekit eval --engine fake` instead";

T5Config read_t5_config(const Artifact& a, const Value& cfg, int max_ctx) {
    if (cfg.type != Type::kObject) a.fail(K::kFormat, "metadata 'edgekit.model_config' must be a JSON object");
    T5Config c;
    c.d_model = cfg_int(a, cfg, "d_model", 1, 1 << 16);
    c.d_kv = cfg_int(a, cfg, "d_kv", 1, 1 << 12);
    c.d_ff = cfg_int(a, cfg, "d_ff", 1, 1 << 18);
    c.n_heads = cfg_int(a, cfg, "num_heads", 1, 4096);
    c.n_enc = cfg_int(a, cfg, "num_layers", 1, 4096);
    c.n_dec = cfg_int(a, cfg, "num_decoder_layers", 1, 4096, &c.n_enc);
    c.vocab = cfg_int(a, cfg, "vocab_size", 1, 1 << 24);
    const int buckets = 32, distance = 128, zero = 0;
    c.buckets = cfg_int(a, cfg, "relative_attention_num_buckets", 2, 1 << 16, &buckets);
    c.max_distance = cfg_int(a, cfg, "relative_attention_max_distance", 1, 1 << 30, &distance);
    c.decoder_start = cfg_int(a, cfg, "decoder_start_token_id", 0, c.vocab - 1, &zero);
    const float eps = 1e-6f;
    c.eps = cfg_positive(a, cfg, "layer_norm_epsilon", &eps);
    const Value* ffn = cfg.find("feed_forward_proj");
    if (!ffn || ffn->type != Type::kString || ffn->string != "gated-gelu_pytorch_tanh")
        a.fail(K::kUnsupported, "the C++ runtime runs T5 v1.1 with feed_forward_proj gated-gelu_pytorch_tanh (edgekit "
                                "distill's student)" + std::string(kT5Elsewhere));
    const Value* tie = cfg.find("tie_word_embeddings");
    if (tie && !(tie->type == Type::kBool && tie->boolean))
        a.fail(K::kUnsupported, "the C++ runtime runs a T5 with a tied head (tie_word_embeddings)" +
                                std::string(kT5Elsewhere));
    c.max_ctx = max_ctx > 0 ? max_ctx : kDefaultMaxCtx;
    return c;
}

Q4Weight t5_linear(const Artifact& a, const Value& linears, const std::string& name, int64_t n, int64_t k,
                   std::set<std::string>& expected) {
    const ActQuant act = check_linear(a, linears, name, n, k);
    Q4Weight w = q4_weight(a, name, n, k);
    w.act = act;
    if (act == ActQuant::kPerTensor) w.act_scale = act_scale(a, name);
    expected.insert(name);
    return w;
}

// One block of a stack: prefix "encoder.block.3." / "decoder.block.0."; T5's sublayers layer.0 (self-attention),
// layer.1 (decoder: cross-attention), then the FFN.
T5Layer t5_layer(const Artifact& a, const Value& linears, const T5Config& c, const std::string& p, bool decoder,
                 std::set<std::string>& expected) {
    const int64_t h = c.d_model, inner = (int64_t)c.n_heads * c.d_kv;
    T5Layer l;
    const std::string sa = p + "layer.0.SelfAttention.", ff = p + (decoder ? "layer.2." : "layer.1.");
    l.attn_norm = float_vector(a, p + "layer.0.layer_norm.weight", h);
    l.self.q = t5_linear(a, linears, sa + "q", inner, h, expected);
    l.self.k = t5_linear(a, linears, sa + "k", inner, h, expected);
    l.self.v = t5_linear(a, linears, sa + "v", inner, h, expected);
    l.self.o = t5_linear(a, linears, sa + "o", h, inner, expected);
    if (decoder) {
        const std::string ca = p + "layer.1.EncDecAttention.";
        l.cross_norm = float_vector(a, p + "layer.1.layer_norm.weight", h);
        l.cross.q = t5_linear(a, linears, ca + "q", inner, h, expected);
        l.cross.k = t5_linear(a, linears, ca + "k", inner, h, expected);
        l.cross.v = t5_linear(a, linears, ca + "v", inner, h, expected);
        l.cross.o = t5_linear(a, linears, ca + "o", h, inner, expected);
    }
    l.ffn_norm = float_vector(a, ff + "layer_norm.weight", h);
    l.wi0 = t5_linear(a, linears, ff + "DenseReluDense.wi_0", c.d_ff, h, expected);
    l.wi1 = t5_linear(a, linears, ff + "DenseReluDense.wi_1", c.d_ff, h, expected);
    l.wo = t5_linear(a, linears, ff + "DenseReluDense.wo", h, c.d_ff, expected);
    return l;
}

}  // namespace

std::unique_ptr<T5Model> load_t5(const std::string& path, int max_ctx) {
    check_max_ctx(max_ctx);
    Artifact a(path);
    check_kind(a, "t5", "seq2seq-lm", ", not a T5 encoder-decoder (t5 seq2seq-lm)");
    const T5Config c = read_t5_config(a, meta_json(a, "edgekit.model_config"), max_ctx);
    const Value quant = meta_json(a, "edgekit.quant");
    check_quant(a, quant);
    const Value linears = meta_json(a, "edgekit.linears");
    if (linears.type != Type::kObject) a.fail(K::kFormat, "metadata 'edgekit.linears' must be a JSON object");
    std::set<std::string> expected;
    std::vector<T5Layer> enc, dec;
    for (int i = 0; i < c.n_enc; ++i)
        enc.push_back(t5_layer(a, linears, c, "encoder.block." + std::to_string(i) + ".", false, expected));
    for (int i = 0; i < c.n_dec; ++i)
        dec.push_back(t5_layer(a, linears, c, "decoder.block." + std::to_string(i) + ".", true, expected));
    for (const json::Member& m : linears.object) {
        if (!expected.count(m.key))
            a.fail(K::kUnsupported, "quantized linear '" + m.key + "' is not part of the T5 the C++ runtime runs" +
                                    std::string(kT5Elsewhere));
    }
    const int64_t h = c.d_model;
    const std::string bias = ".block.0.layer.0.SelfAttention.relative_attention_bias.weight";
    std::vector<float> enc_bias = float_matrix(a, "encoder" + bias, c.buckets, c.n_heads);
    std::vector<float> dec_bias = float_matrix(a, "decoder" + bias, c.buckets, c.n_heads);
    // the shared table is stored once, under the first of its tied names
    const char* table_name = a.find("shared.weight") ? "shared.weight" : "encoder.embed_tokens.weight";
    const TensorInfo& table = tensor(a, table_name, DType::kF32, {c.vocab, h});
    Q8Table q8;
    std::vector<uint16_t> embed;
    const bool act8 = q8_head_act8(a, quant);  // checked even where the head is fp16
    if (q8_head(a, quant)) {
        if (h % 32) a.fail(K::kFormat, "lm_head_bits 8 needs a d_model that is a multiple of 32");
        q8 = q8_table(a, table);
        q8.act8 = act8;
    } else {
        embed = fp16_table(a, table);
    }
    std::vector<float> enc_norm = float_vector(a, "encoder.final_layer_norm.weight", h);
    std::vector<float> dec_norm = float_vector(a, "decoder.final_layer_norm.weight", h);
    try {
        return std::make_unique<T5Model>(c, std::move(embed), std::move(q8), std::move(enc_bias), std::move(dec_bias),
                                         std::move(enc_norm), std::move(dec_norm), std::move(enc), std::move(dec));
    } catch (const std::invalid_argument& e) {
        a.fail(K::kFormat, e.what());
    }
}

}  // namespace edgekit
